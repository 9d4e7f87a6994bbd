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
