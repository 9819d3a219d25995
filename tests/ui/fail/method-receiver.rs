struct S {
    id: u32,
}

impl S {
    // No key: a method's cache is shared by every instance, so the key must be said.
    #[memoflight::cached]
    fn f(&self, n: u32) -> u32 {
        n
    }

    // A key read from `self` must have its type named.
    #[memoflight::cached(convert = (self.id, n))]
    fn g(&self, n: u32) -> u32 {
        n + self.id
    }

    #[memoflight::cached(convert = n, store = memoflight::Unbounded::new())]
    fn h(&self, n: u32) -> u32 {
        n
    }
}

fn main() {
    let s = S { id: 1 };
    s.f(1);
    s.g(1);
    s.h(1);
}
