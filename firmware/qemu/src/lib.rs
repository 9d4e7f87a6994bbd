//! The QEMU mps2-an386 board: instruction counting with SysTick under `-icount shift=0`, the
//! CMSDK UART0 behind the `embedded-io` traits, ending QEMU through semihosting, the panic handler.
#![no_std]

pub mod uart;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_semihosting::debug::{exit, EXIT_FAILURE};
use defmt_semihosting as _;

extern "C" {
    fn DefaultHandler();
}

/// The vectors of mps2-an386's 32 external interrupts (the CMSDK peripherals'): none is enabled, so
/// each is cortex-m-rt's default handler. A device crate would list them; this board has none.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [unsafe extern "C" fn(); 32] = [DefaultHandler; 32];

/// SysTick is a 24-bit down-counter.
const SYSTICK_MASK: u32 = 0x00ff_ffff;

/// Starts SysTick free-running from the CPU clock.
pub fn start_systick(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_MASK);
    syst.clear_current();
    syst.enable_counter();
}

/// The SysTick value now, for [`ticks_since`].
pub fn ticks_now() -> u32 {
    SYST::get_current()
}

/// SysTick ticks since `start` (at most 2^24 - 1 of them).
pub fn ticks_since(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & SYSTICK_MASK
}

/// Instructions per SysTick tick, measured on a loop of exactly `1 + 100 * (100 + 2)` instructions
/// (QEMU with `-icount shift=0` retires one instruction per virtual nanosecond; SysTick runs from
/// the CPU clock).
pub fn instructions_per_tick() -> f32 {
    const INSTRUCTIONS: u32 = 1 + 100 * (100 + 2);
    let start = ticks_now();
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
    let ticks = ticks_since(start);
    INSTRUCTIONS as f32 / ticks.max(1) as f32
}

/// Logs why and ends QEMU with a failure status (no panic machinery, no formatting code in flash).
pub fn fail(why: &str) -> ! {
    defmt::error!("{=str}", why);
    exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // The location only: formatting the message would pull core::fmt into flash.
    match info.location() {
        Some(l) => defmt::error!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::error!("panic"),
    }
    exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
