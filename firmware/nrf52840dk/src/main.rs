//! nRF52840-DK firmware: runs every embedded vector (cycles from the DWT counter), logs over RTT
//! with defmt, then shows the predicted class in binary on LEDs 1-4; button 1 steps to the next vector.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::{announce, check_vectors, show_class, Stepper};
use dropship_model::{ModelScratch, INPUT, NETWORK, OUTPUTS, SHAPE, VECTORS};
use embedded_hal::delay::DelayNs;
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::{pac, Delay};
use panic_probe as _;

#[entry]
fn main() -> ! {
    let p = pac::Peripherals::take().expect("taken once");
    let mut core = pac::CorePeripherals::take().expect("taken once");
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();
    let port0 = p0::Parts::new(p.P0);
    // LEDs 1-4 on P0.13-P0.16 and button 1 on P0.11, all active low.
    let mut leds = [
        port0.p0_13.into_push_pull_output(Level::High).degrade(),
        port0.p0_14.into_push_pull_output(Level::High).degrade(),
        port0.p0_15.into_push_pull_output(Level::High).degrade(),
        port0.p0_16.into_push_pull_output(Level::High).degrade(),
    ];
    let mut button = port0.p0_11.into_pullup_input();
    let mut delay = Delay::new(core.SYST);
    // Give cargo embed a moment to attach RTT after the reset, so the boot log is not lost.
    delay.delay_ms(1000);

    announce(&SHAPE);

    let mut scratch = ModelScratch::new();
    let mut logits = [0.0f32; OUTPUTS];
    let mut infer = |input: &[f32; INPUT], logits: &mut [f32; OUTPUTS]| {
        let start = DWT::cycle_count();
        let class = core::hint::black_box(&NETWORK).predict(input, &mut scratch, logits);
        (class, DWT::cycle_count().wrapping_sub(start))
    };
    let checked = check_vectors(&VECTORS, &mut logits, &mut infer);
    let per_inference = checked.cost as f32 / VECTORS.len().max(1) as f32;
    defmt::info!("cost: {=f32} cycles per inference, {=f32} per MAC", per_inference, per_inference / SHAPE.macs as f32);

    let mut stepper = Stepper::new(VECTORS.len());
    let mut shown = None;
    loop {
        let index = stepper.index();
        if shown != Some(index) {
            let class = VECTORS.get(index).map_or(0, |v| infer(&v.input_f32(), &mut logits).0);
            if show_class(&mut leds, class, true).is_err() {
                defmt::warn!("cannot drive the LEDs");
            }
            shown = Some(index);
        }
        if let Ok(Some(next)) = stepper.poll(&mut button) {
            defmt::info!("showing vector {=usize}", next);
        }
        delay.delay_ms(10);
    }
}
