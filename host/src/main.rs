//! `onegrid`: the native host. The module loader lands with the one-module issue.

fn main() {
    println!("onegrid {}", env!("CARGO_PKG_VERSION"));
}
