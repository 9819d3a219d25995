//! memoflight
pub use memoflight_core::*;
pub use memoflight_macros::cached;

#[doc(hidden)]
pub mod __private {
    pub use memoflight_core::__macro_support::*;
}
