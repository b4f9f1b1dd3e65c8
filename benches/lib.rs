//! Nothing here: the benchmarks are in `resolver.rs`.
