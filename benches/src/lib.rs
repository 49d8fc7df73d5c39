//! Benchmark support (to be written).
