//! Build script: when DuckDB is not compiled in (the `bundled-duckdb` feature off),
//! the binary and tests link the shared libduckdb in DUCKDB_LIB_DIR (libduckdb-sys
//! adds the link flags); this records that directory as their run path so they find
//! the library without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED_DUCKDB").is_some() {
        return;
    }
    match std::env::var("DUCKDB_LIB_DIR") {
        Ok(dir) if !dir.is_empty() => println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}"),
        _ => println!(
            "cargo:warning=the bundled-duckdb feature is off and DUCKDB_LIB_DIR is not set: the system's libduckdb must be on the library path"
        ),
    }
}
