use memoflight::cached;

// More arguments than a borrowed key covers (8): looked up through an owned key instead.
#[cached]
#[allow(clippy::too_many_arguments)]
fn wide(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8, i: &str, j: u8) -> usize {
    [a, b, c, d, e, f, g, h, j].iter().map(|&x| x as usize).sum::<usize>() + i.len()
}

fn main() {
    assert_eq!(wide(1, 1, 1, 1, 1, 1, 1, 1, "x", 1), 10);
    assert_eq!(wide(1, 1, 1, 1, 1, 1, 1, 1, "x", 1), 10);
    assert_eq!(wide_cache().stats().hits, 1);
}
