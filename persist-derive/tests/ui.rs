//! Compile errors of `#[persist(...)]`, with their spans: each `tests/ui/*.rs` must fail to
//! compile with exactly the committed `.stderr`. Regenerate on purpose with
//! `TRYBUILD=overwrite cargo test -p persist-derive --test ui`.

#[test]
fn compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
