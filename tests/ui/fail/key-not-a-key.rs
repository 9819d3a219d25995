// A key part that is not `Hash + Eq`, or a `key = ..` type that is not, is reported on its own
// tokens (and the value type on the return type).
#[derive(Clone, PartialEq)]
struct Point(f64, f64);

#[memoflight::cached(key = Point, convert = { Point(x, y) })]
fn by_point(x: f64, y: f64) -> f64 {
    x + y
}

#[memoflight::cached]
fn second_part(id: u32, point: Point) -> f64 {
    f64::from(id) + point.0
}

fn main() {}
