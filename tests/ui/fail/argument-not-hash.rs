// A key must be Hash + Eq: rustc's error points at the argument's type.
#[derive(Clone, PartialEq)]
struct Point(f64, f64);

#[memoflight::cached]
fn f(point: Point) -> f64 {
    point.0 + point.1
}

fn main() {
    f(Point(1.0, 2.0));
}
