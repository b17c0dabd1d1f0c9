//! Finding a subscription's secrets among the keyring's by the first eight bytes of its id,
//! in one probe, mostly.

/// The first eight bytes of an id as a big-endian number (zero-padded): ordered as the
/// ids are.
pub(super) fn prefix(id: &[u8]) -> u64 {
    if let Some(eight) = id.first_chunk() {
        return u64::from_be_bytes(*eight);
    }
    let mut eight = [0; 8];
    eight[..id.len()].copy_from_slice(id);
    u64::from_be_bytes(eight)
}

/// Where each run of equal prefixes starts in the sorted prefixes, by a hash of the
/// prefix: one multiplication and, mostly, one probe find a delivery's subscription, where
/// a binary search of forty waits on six loads in a row.
#[derive(Clone, Default)]
pub(super) struct PrefixIndex {
    // Open addressing, at most half full, probed in order: 0 is an empty slot, any other
    // value the position of the run's first prefix, plus one.
    slots: Box<[usize]>,
    // The slot count's power of two.
    bits: u32,
}

impl PrefixIndex {
    pub(super) fn new(prefixes: &[u64]) -> Self {
        let runs = prefixes.chunk_by(|a, b| a == b).count();
        if runs == 0 {
            return Self::default();
        }
        let bits = (2 * runs).next_power_of_two().trailing_zeros();
        let mut index = Self {
            slots: vec![0; 1 << bits].into_boxed_slice(),
            bits,
        };
        let mut start = 0;
        for run in prefixes.chunk_by(|a, b| a == b) {
            let mut slot = index.home(run[0]);
            while index.slots[slot] != 0 {
                slot = index.next(slot);
            }
            index.slots[slot] = start + 1;
            start += run.len();
        }
        index
    }

    /// The position of the first of `prefixes` equal to `wanted`, if any.
    pub(super) fn first(&self, prefixes: &[u64], wanted: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut slot = self.home(wanted);
        // Ends: at least half the slots are empty.
        loop {
            let first = self.slots[slot].checked_sub(1)?;
            if prefixes[first] == wanted {
                return Some(first);
            }
            slot = self.next(slot);
        }
    }

    /// Fibonacci hashing: the top bits of the product depend on every bit of the prefix.
    fn home(&self, prefix: u64) -> usize {
        let top = prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bits.max(1));
        usize::try_from(top).unwrap_or(0) & (self.slots.len() - 1)
    }

    fn next(&self, slot: usize) -> usize {
        (slot + 1) & (self.slots.len() - 1)
    }
}
