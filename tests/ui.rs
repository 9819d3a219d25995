//! Compile-time behaviour of `#[cached]`: what compiles (`ui/pass`) and the spanned errors for
//! misuse (`ui/fail`, with the expected compiler output in `.stderr`). Regenerate expectations
//! with `TRYBUILD=overwrite cargo test --test ui` and read the diff.
//!
//! Cases that depend on a feature run in the build that has (or lacks) it: the README's test
//! command runs this file with all features and again with none; a plain
//! `cargo test --workspace` runs it with `async` but not `tokio`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    #[cfg(feature = "async")]
    cases.pass("tests/ui/pass-async/*.rs");
    #[cfg(feature = "async")]
    cases.compile_fail("tests/ui/fail-async/*.rs");
    #[cfg(feature = "tokio")]
    cases.pass("tests/ui/pass-tokio/*.rs");
    #[cfg(not(feature = "async"))]
    cases.compile_fail("tests/ui/fail-without-async/*.rs");
    #[cfg(all(feature = "async", not(feature = "tokio")))]
    cases.compile_fail("tests/ui/fail-async-without-tokio/*.rs");
}
