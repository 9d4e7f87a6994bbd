//! Raspberry Pi Pico self-test firmware: runs every embedded vector (core cycles from SysTick),
//! logs over RTT with defmt, and lights the LED when every vector matched the host.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::{announce, check_vectors};
use dropship_model::{ModelScratch, NETWORK, OUTPUTS, SHAPE, VECTORS};
use dropship_pico::{cycles_between, cycles_now};
use embedded_hal::digital::OutputPin;
use panic_probe as _;

#[entry]
fn main() -> ! {
    let mut pico = dropship_pico::init();
    // Give cargo embed a moment to attach RTT after the reset, so the boot log is not lost.
    cortex_m::asm::delay(125_000_000);
    announce(&SHAPE);
    let mut scratch = ModelScratch::new();
    let mut logits = [0.0f32; OUTPUTS];
    let checked = check_vectors(&VECTORS, &mut logits, |input, logits| {
        let start = cycles_now();
        let class = core::hint::black_box(&NETWORK).predict(input, &mut scratch, logits);
        (class, cycles_between(start, cycles_now()))
    });
    let per_inference = checked.cost as f32 / VECTORS.len().max(1) as f32;
    defmt::info!("cost: {=f32} cycles per inference, {=f32} per MAC", per_inference, per_inference / SHAPE.macs as f32);
    if checked.tally.all_match() && pico.led.set_high().is_err() {
        defmt::warn!("cannot drive the LED");
    }
    loop {
        cortex_m::asm::wfi();
    }
}
