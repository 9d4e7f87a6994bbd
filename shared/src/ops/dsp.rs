//! The Cortex-M4's DSP instructions the int8 kernels use (`SXTB16`, `SMLAD`, `SMLABB`, `SMLATT`,
//! `SSUB16`), one `asm!` each: register-only, so each is safe to call on a core that has them
//! (this module is built only for Arm targets with the `dsp` feature).

/// Sign-extends bytes 0 and 2 of `v` into two halfwords.
#[inline(always)]
pub(crate) fn sxtb16(v: u32) -> u32 {
    let r: u32;
    // SAFETY: a register-only instruction of the DSP extension, which this target has.
    unsafe { core::arch::asm!("sxtb16 {r}, {a}", r = lateout(reg) r, a = in(reg) v, options(pure, nomem, nostack)) };
    r
}

/// Sign-extends bytes 1 and 3 of `v` into two halfwords.
#[inline(always)]
pub(crate) fn sxtb16_ror8(v: u32) -> u32 {
    let r: u32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("sxtb16 {r}, {a}, ror #8", r = lateout(reg) r, a = in(reg) v, options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.lo * b.lo + a.hi * b.hi` (signed halfwords).
#[inline(always)]
pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
            options(pure, nomem, nostack))
    };
    r
}

/// `a - b` in each signed halfword.
#[inline(always)]
pub(crate) fn ssub16(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("ssub16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
    };
    r
}

/// Four bytes as one little-endian word (one `LDR`; the Cortex-M4 loads unaligned words).
#[inline(always)]
pub(crate) fn word(bytes: &[i8; 4]) -> u32 {
    u32::from_le_bytes(bytes.map(|b| b as u8))
}

/// `acc + a.lo * b.lo` (signed halfwords).
#[inline(always)]
pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: a register-only instruction of the DSP extension, which this target has.
    unsafe {
        core::arch::asm!("smlabb {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
            options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.hi * b.hi` (signed halfwords).
#[inline(always)]
pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("smlatt {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc,
            options(pure, nomem, nostack))
    };
    r
}

/// The frame every job-record `asm!` loop of the int8 kernels shares: `$job` (a pointer to the
/// kernel's `#[repr(C)]` job, pushed so the loop reads it back from `[sp]`) in `r0`, the weights
/// `$w` in `r2`, `r6`/`r7` saved and restored around the loop's lines (LLVM reserves them), every
/// other register but `sp` and `pc` clobbered. Expands to the `asm!` call: the caller wraps it in
/// `unsafe` with the loop's contract.
macro_rules! job_asm {
    ($job:expr, $w:expr, $($line:expr),+ $(,)?) => {
        core::arch::asm!(
            "push {{r6, r7}}",
            "push {{r0, r1}}",
            $($line,)+
            "pop {{r0, r1}}",
            "pop {{r6, r7}}",
            inout("r0") $job => _,
            out("r1") _,
            inout("r2") $w => _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
        )
    };
}
pub(crate) use job_asm;
