//! Compile-time behaviour of `#[cached]`: what compiles (`ui/pass`) and the spanned errors for
//! misuse (`ui/fail`, with the expected compiler output in `.stderr`). Regenerate expectations
//! with `TRYBUILD=overwrite cargo test --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
