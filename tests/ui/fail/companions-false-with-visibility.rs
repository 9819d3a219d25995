//! `companions = false` makes the companions private: a `companions_vis` next to it is
//! refused.
use memoflight::{cached, Return};

#[cached(companions = false, companions_vis = "pub")]
fn hidden_and_visible(n: u64) -> Return<u64> {
    Return::new(n)
}

fn main() {}
