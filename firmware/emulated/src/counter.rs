//! Counting instructions under QEMU's `-icount shift=0` (one instruction per virtual nanosecond):
//! SysTick from the CPU clock on Cortex-M, `minstret` on RISC-V. [`instructions_per_tick`]
//! calibrates a tick on a loop of a known number of instructions.

#[cfg(target_arch = "arm")]
mod arch {
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;

    /// What counts.
    pub const NAME: &str = "SysTick";
    /// SysTick is a 24-bit down-counter.
    const MASK: u32 = 0x00ff_ffff;

    /// Starts SysTick free-running from the CPU clock.
    pub fn start() {
        // SAFETY: SysTick is this firmware's alone: no other code (and no interrupt) configures it.
        let mut syst = unsafe { cortex_m::Peripherals::steal() }.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(MASK);
        syst.clear_current();
        syst.enable_counter();
    }

    /// The counter now, for [`super::ticks_since`].
    pub fn ticks_now() -> u32 {
        SYST::get_current()
    }

    /// Ticks from the reading `from` to the reading `to` (at most 2^24 - 1 of them).
    pub fn ticks_between(from: u32, to: u32) -> u32 {
        from.wrapping_sub(to) & MASK
    }

    /// Runs exactly `1 + 100 * (100 + 2)` instructions.
    pub fn known_loop() {
        // SAFETY: only the counter register and the flags change; no memory is touched.
        unsafe {
            core::arch::asm!(
                "movs {n}, #100",
                "2:",
                ".rept 100",
                "nop",
                ".endr",
                "subs {n}, #1",
                "bne 2b",
                n = out(reg) _,
                options(nomem, nostack)
            )
        };
    }
}

#[cfg(target_arch = "riscv32")]
mod arch {
    /// What counts.
    pub const NAME: &str = "minstret";

    /// `minstret` counts from reset: nothing to start.
    pub fn start() {}

    /// The counter now (its low 32 bits), for [`super::ticks_since`].
    pub fn ticks_now() -> u32 {
        riscv::register::minstret::read() as u32
    }

    /// Ticks from the reading `from` to the reading `to`.
    pub fn ticks_between(from: u32, to: u32) -> u32 {
        to.wrapping_sub(from)
    }

    /// Runs exactly `1 + 100 * (100 + 2)` instructions.
    pub fn known_loop() {
        // SAFETY: only the counter register changes; no memory is touched.
        unsafe {
            core::arch::asm!(
                "li {n}, 100",
                "2:",
                ".rept 100",
                "nop",
                ".endr",
                "addi {n}, {n}, -1",
                "bnez {n}, 2b",
                n = out(reg) _,
                options(nomem, nostack)
            )
        };
    }
}

pub use arch::{start, ticks_between, ticks_now, NAME};

/// Ticks since the reading `start`.
pub fn ticks_since(start: u32) -> u32 {
    ticks_between(start, ticks_now())
}

/// Instructions per tick, measured on a loop of exactly `1 + 100 * (100 + 2)` instructions. Out of
/// line: the assembler cannot size the loop's 100 `nop`s, and inside a large function on the
/// Cortex-M0 (Thumb-1's short literal loads) that misplaces a literal pool.
#[inline(never)]
pub fn instructions_per_tick() -> f32 {
    const INSTRUCTIONS: u32 = 1 + 100 * (100 + 2);
    let start = ticks_now();
    arch::known_loop();
    let ticks = ticks_since(start);
    INSTRUCTIONS as f32 / ticks.max(1) as f32
}
