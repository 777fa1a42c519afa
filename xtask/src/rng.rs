//! A small xorshift generator, for load generators and nemeses that need
//! cheap reproducible choices (not for anything that must be unpredictable).

/// Xorshift64: each session or nemesis draws from its own.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
