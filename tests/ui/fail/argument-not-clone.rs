// rustc's own error points at the argument's type, not at the attribute.
#[derive(PartialEq, Eq, Hash)]
struct Id(u32);

#[memoflight::cached]
fn f(id: Id) -> u32 {
    id.0
}

fn main() {
    f(Id(1));
}
