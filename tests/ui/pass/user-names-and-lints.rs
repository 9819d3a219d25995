// A user's blanket traits whose methods are named like the runtime's (`lookup`, `compute`,
// `describe`, `sharing`) do not make generated calls ambiguous; lint attributes of the user's
// function apply where its body is (an `expect` is fulfilled, a deprecated function's own
// expansion is not a use of it); `convert` sees through the function's lifetimes.
#![deny(unfulfilled_lint_expectations, deprecated)]

trait Everything {
    fn lookup(&self, _key: &u64) -> Option<u64> {
        None
    }
    fn compute(&self) {}
    fn compute_async(&self) {}
    fn describe(&self) -> Option<String> {
        None
    }
    fn sharing(&self) {}
}

impl<T: ?Sized> Everything for T {}

#[memoflight::cached]
fn double(n: u64) -> u64 {
    n * 2
}

#[expect(unused_variables)]
#[memoflight::cached]
fn with_expectation(n: u64) -> u64 {
    let unused = 1;
    n
}

#[deprecated(note = "use double")]
#[memoflight::cached]
fn old(n: u64) -> u64 {
    n
}

#[memoflight::cached(convert = text.len())]
fn length<'a>(text: &'a str) -> usize {
    text.len()
}

fn main() {
    assert_eq!(double(2), 4);
    assert_eq!(with_expectation(3), 3);
    #[allow(deprecated)]
    let old = old(4);
    assert_eq!(old, 4);
    assert_eq!(length("four"), 4);
    assert_eq!(length("four"), 4);
    assert_eq!(length_cache().stats().hits, 1);
    ().compute();
}
