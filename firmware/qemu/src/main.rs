//! QEMU mps2-an386 firmware: logs the model, runs every embedded vector, compares with the host,
//! counts instructions per inference with SysTick under `-icount shift=0`, exits 0 on a full match.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{exit, EXIT_FAILURE, EXIT_SUCCESS};
use defmt_semihosting as _;
use dropship_app::{announce, check_vectors};
use dropship_model::{ModelScratch, CLASSES, NETWORK, SHAPE, VECTORS};

/// SysTick is a 24-bit down-counter.
const SYSTICK_MASK: u32 = 0x00ff_ffff;

fn ticks_since(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & SYSTICK_MASK
}

/// Instructions per SysTick tick, measured on a loop of exactly `1 + 10 * (1000 + 2)` instructions
/// (QEMU with `-icount shift=0` retires one instruction per virtual nanosecond; SysTick runs from
/// the CPU clock).
fn instructions_per_tick() -> f32 {
    const INSTRUCTIONS: u32 = 1 + 10 * (1000 + 2);
    let start = SYST::get_current();
    // SAFETY: only r0 and the flags change; no memory is touched.
    unsafe {
        core::arch::asm!(
            "movs {n}, #10",
            "2:",
            ".rept 1000",
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

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else { fail("core peripherals taken twice") };
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(SYSTICK_MASK);
    core.SYST.clear_current();
    core.SYST.enable_counter();
    announce(&SHAPE);

    let per_tick = instructions_per_tick();
    let Some(scratch) = cortex_m::singleton!(: ModelScratch = ModelScratch::new()) else { fail("scratch taken twice") };
    let Some(logits) = cortex_m::singleton!(: [f32; CLASSES] = [0.0; CLASSES]) else { fail("logits taken twice") };
    let checked = check_vectors(&VECTORS, logits, |input, logits| {
        let start = SYST::get_current();
        let class = black_box(&NETWORK).predict(black_box(input), scratch, logits);
        (class, ticks_since(start))
    });
    let instructions = checked.cost as f32 * per_tick / VECTORS.len().max(1) as f32;
    defmt::info!(
        "cost: {=f32} instructions per inference, {=f32} per MAC ({=f32} instructions per SysTick tick)",
        instructions,
        instructions / SHAPE.macs as f32,
        per_tick
    );
    exit(if checked.tally.all_match() { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Logs why and ends QEMU with a failure status (no panic machinery, no formatting code in flash).
fn fail(why: &str) -> ! {
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
