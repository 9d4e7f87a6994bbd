//! QEMU mps2-an386 self-test firmware: logs the model, runs every embedded vector, compares with the
//! host, counts instructions per inference with SysTick under `-icount shift=0`, exits 0 on a full
//! match.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{exit, EXIT_FAILURE, EXIT_SUCCESS};
use dropship_app::{announce, check_vectors};
use dropship_model::{ModelScratch, NETWORK, OUTPUTS, SHAPE, VECTORS};
use dropship_qemu::{fail, instructions_per_tick, start_systick, ticks_now, ticks_since};

#[entry]
fn main() -> ! {
    let Some(mut core) = cortex_m::Peripherals::take() else { fail("core peripherals taken twice") };
    start_systick(&mut core.SYST);
    announce(&SHAPE);

    let per_tick = instructions_per_tick();
    let Some(scratch) = cortex_m::singleton!(: ModelScratch = ModelScratch::new()) else { fail("scratch taken twice") };
    let Some(logits) = cortex_m::singleton!(: [f32; OUTPUTS] = [0.0; OUTPUTS]) else { fail("logits taken twice") };
    let checked = check_vectors(&VECTORS, logits, |input, logits| {
        let start = ticks_now();
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
