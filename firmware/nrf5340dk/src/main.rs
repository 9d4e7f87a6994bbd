//! nRF5340-DK self-test firmware (application core, secure state): runs every embedded vector
//! (cycles from the DWT counter), logs over RTT with defmt, and lights LED 1 (P0.28, active low)
//! when every vector matched the host.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::{announce, check_vectors};
use dropship_model::{ModelScratch, NETWORK, OUTPUTS, SHAPE, VECTORS};
use embedded_hal::digital::OutputPin;
use nrf5340_app_hal::gpio::{p0_s, Level};
use nrf5340_app_hal::pac;
use panic_probe as _;

#[entry]
fn main() -> ! {
    let p = pac::Peripherals::take().expect("taken once");
    let mut core = pac::CorePeripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    let mut led = p0_s::Parts::new(p.P0_S).p0_28.into_push_pull_output(Level::High);
    // Give cargo embed a moment to attach RTT after the reset, so the boot log is not lost.
    cortex_m::asm::delay(64_000_000);
    announce(&SHAPE);
    let mut scratch = ModelScratch::new();
    let mut logits = [0.0f32; OUTPUTS];
    let checked = check_vectors(&VECTORS, &mut logits, |input, logits| {
        let start = DWT::cycle_count();
        let class = core::hint::black_box(&NETWORK).predict(input, &mut scratch, logits);
        (class, DWT::cycle_count().wrapping_sub(start))
    });
    let per_inference = checked.cost as f32 / VECTORS.len().max(1) as f32;
    defmt::info!("cost: {=f32} cycles per inference, {=f32} per MAC", per_inference, per_inference / SHAPE.macs as f32);
    if checked.tally.all_match() && led.set_low().is_err() {
        defmt::warn!("cannot drive the LED");
    }
    loop {
        cortex_m::asm::wfi();
    }
}
