//! The one integration test binary: real servers on 127.0.0.1:0, real HTTP,
//! real storage backends. Modules live under `tests/it/`.

#[path = "it/mod.rs"]
mod it;
