use memoflight::cached;

/// Docs stay on the memoized function.
#[cached]
#[inline]
pub(crate) fn documented<'a>(mut n: u32, (x, y): (u8, u8), s: &'a str) -> u32 {
    n += x as u32 + y as u32 + s.len() as u32;
    n
}

mod inner {
    #[memoflight::cached]
    pub fn visible(n: u64) -> u64 {
        n
    }
}

#[cached]
fn nothing_in() -> Vec<u8> {
    vec![1]
}

fn main() {
    assert_eq!(documented(1, (1, 1), "ab"), 5);
    assert_eq!(documented_no_cache(1, (1, 1), "ab"), 5);
    assert_eq!(inner::visible(3), 3);
    assert_eq!(inner::visible_cache().len(), 1);
    assert_eq!(nothing_in(), vec![1]);
}
