// rustc's error names `Id` and the missing `Clone` (it lands on the signature's types).
#[derive(PartialEq, Eq, Hash)]
struct Id(u32);

#[memoflight::cached]
fn f(id: Id) -> u32 {
    id.0
}

fn main() {
    f(Id(1));
}
