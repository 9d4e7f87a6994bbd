//! Subnormal floats flushed to zero while training, as TensorFlow's CPU threads run (FTZ and DAZ
//! on x86-64, FZ on AArch64).
//!
//! An L2 penalty shrinks weights and gradients until their squares in Adam's second moment turn
//! subnormal, and x86 cores take a slow path of a hundred cycles or more for every operation on
//! one: without flushing, the course's L2 model trained 2.7 times slower than the others. The mode
//! is per thread: [`Flush`] sets it for the training thread and puts the previous mode back when
//! dropped (inference on the host keeps IEEE semantics, as the device does), and
//! [`flush_in_worker`] sets it for good in the threads of the matrix products' pool.

/// The training thread's float mode, flushing subnormals until dropped.
pub struct Flush {
    previous: Option<u64>,
}

impl Flush {
    /// Flushes subnormal inputs and results to zero on this thread.
    pub fn start() -> Self {
        let previous = mode::get();
        if let Some(bits) = previous {
            mode::set(bits | mode::FLUSH);
        }
        Self { previous }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(bits) = self.previous {
            mode::set(bits);
        }
    }
}

/// Flushes subnormals to zero on this thread from now on (for a worker pool's start handler).
pub fn flush_in_worker() {
    if let Some(bits) = mode::get() {
        mode::set(bits | mode::FLUSH);
    }
}

/// Whether subnormals are flushed on this thread now (`None` on an architecture without the mode).
pub fn flushing() -> Option<bool> {
    mode::get().map(|bits| bits & mode::FLUSH == mode::FLUSH)
}

#[cfg(target_arch = "x86_64")]
mod mode {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
    pub const FLUSH: u64 = 0x8040;

    #[allow(deprecated)] // the intrinsics are the documented way to reach MXCSR
    pub fn get() -> Option<u64> {
        // SAFETY: reading MXCSR has no side effect; SSE is part of x86-64.
        Some(unsafe { core::arch::x86_64::_mm_getcsr() } as u64)
    }

    #[allow(deprecated)]
    pub fn set(bits: u64) {
        // SAFETY: only the rounding/flush control bits read from MXCSR are written back.
        unsafe { core::arch::x86_64::_mm_setcsr(bits as u32) }
    }
}

#[cfg(target_arch = "aarch64")]
mod mode {
    /// FPCR's flush-to-zero bit (24).
    pub const FLUSH: u64 = 1 << 24;

    pub fn get() -> Option<u64> {
        let bits: u64;
        // SAFETY: reading FPCR has no side effect.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) bits, options(nomem, nostack)) };
        Some(bits)
    }

    pub fn set(bits: u64) {
        // SAFETY: writes back FPCR as read, with at most the flush bit changed.
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) bits, options(nomem, nostack)) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod mode {
    pub const FLUSH: u64 = 0;

    pub fn get() -> Option<u64> {
        None
    }

    pub fn set(_bits: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn subnormal_results_are_zero_while_flushing_and_not_after() {
        let tiny = black_box(f32::MIN_POSITIVE);
        assert!(tiny / black_box(4.0) > 0.0, "IEEE before");
        {
            let _flush = Flush::start();
            assert_eq!(flushing(), Some(true));
            assert_eq!(tiny / black_box(4.0), 0.0, "a subnormal result is flushed");
        }
        assert_eq!(flushing(), Some(false));
        assert!(tiny / black_box(4.0) > 0.0, "IEEE again after the guard");
    }
}
