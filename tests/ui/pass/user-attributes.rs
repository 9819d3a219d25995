// User attributes land once: symbol attributes and attribute macros on the memoized function
// only (two `export_name`s of one symbol would not link), lint attributes on the uncached
// twin too (its body is the user's).
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

static EXPANSIONS: AtomicUsize = AtomicUsize::new(0);

/// Two functions exporting one name would not link: `export_name` lands on the memoized
/// function only, `allow` on the twin that holds the body too.
#[memoflight::cached]
#[export_name = "memoflight_ui_exported_square"]
#[allow(unused_variables)]
pub extern "C" fn square(n: u32) -> u32 {
    let unused = 1;
    EXPANSIONS.fetch_add(1, SeqCst);
    n * n
}

#[memoflight::cached]
#[no_mangle]
#[inline(never)]
#[deny(unused_attributes)]
pub extern "C" fn memoflight_ui_cube(n: u32) -> u32 {
    n * n * n
}

/// The body needs its target feature: the uncached twin that holds it has it too.
#[cfg(target_arch = "x86_64")]
#[memoflight::cached]
#[target_feature(enable = "sse2")]
fn lanes(n: i32) -> i32 {
    use std::arch::x86_64::{_mm_add_epi32, _mm_cvtsi128_si32, _mm_set1_epi32};
    let v = _mm_set1_epi32(n);
    _mm_cvtsi128_si32(_mm_add_epi32(v, v))
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sse2 is part of the x86_64 baseline.
    assert_eq!(unsafe { lanes(21) }, 42);
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(EXPANSIONS.load(SeqCst), 1);
    assert_eq!(memoflight_ui_cube(2), 8);
}
