//! Real `raftkv-server` processes for the benchmarks, the chaos run and the
//! attacks: building the server, starting and stopping processes, reading
//! their CPU and memory, and a client of the started cluster.

pub mod procs;
pub mod raftkv;
