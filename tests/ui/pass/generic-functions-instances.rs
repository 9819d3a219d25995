//! Type and const parameters that appear in neither the key nor the value still tell
//! instantiations apart.
#![deny(warnings)]

use memoflight::cached;

#[cached]
fn times<const N: u32>(x: u32) -> u32 {
    x * N
}

#[cached]
fn size<T: 'static>() -> usize {
    std::mem::size_of::<T>()
}

#[cached]
fn with_default<T>(x: u32) -> String
where
    T: Default + std::fmt::Debug + 'static,
{
    format!("{x}{:?}", T::default())
}

struct Wrapper;

impl Wrapper {
    #[cached(convert = { x }, key = u32)]
    fn scaled<const N: u32>(&self, x: u32) -> u32 {
        x * N
    }
}

fn main() {
    assert_eq!(times::<2>(5), 10);
    assert_eq!(times::<3>(5), 15);
    assert_eq!(size::<u8>(), 1);
    assert_eq!(size::<u64>(), 8);
    assert_eq!(with_default::<u8>(1), "10");
    assert_eq!(with_default::<String>(1), "1\"\"");
    // `key` + `convert`: one cache for every instantiation, as the `cached` crate does.
    assert_eq!(Wrapper.scaled::<2>(5), 10);
    assert_eq!(Wrapper.scaled::<3>(5), 10);
}
