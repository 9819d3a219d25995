struct S;

impl S {
    #[memoflight::cached]
    fn f(&self, n: u32) -> u32 {
        n
    }
}

fn main() {
    S.f(1);
}
