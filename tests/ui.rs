//! Compile-time behaviour of `#[cached]`: what compiles (`ui/pass`) and the spanned errors for
//! misuse (`ui/fail`, with the expected compiler output in `.stderr`). Regenerate expectations
//! with `TRYBUILD=overwrite cargo test --test ui` and read the diff.
//!
//! Cases that depend on a feature run in the build that has (or lacks) it: the README's test
//! command runs this file with all features and again with none.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    #[cfg(feature = "async")]
    cases.pass("tests/ui/pass-async/*.rs");
    #[cfg(not(feature = "async"))]
    cases.compile_fail("tests/ui/fail-without-async/*.rs");
}
