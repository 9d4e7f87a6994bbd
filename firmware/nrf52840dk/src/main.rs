//! nRF52840-DK firmware: runs every embedded vector (cycles from the DWT counter), logs over RTT
//! with defmt, then shows the predicted class in binary on LEDs 1-4; button 1 steps to the next vector.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use dropship_app::{logits_bits, show_class, Stepper, Tally};
use dropship_model::{CLASSES, HIDDEN, INPUT, NETWORK, VECTORS, WEIGHT_BYTES};
use dropship_shared::{Network, Scratch};
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

    let macs = INPUT * HIDDEN + HIDDEN * CLASSES;
    defmt::info!(
        "model: Dense({=usize} -> {=usize}) ReLU, Dense({=usize} -> {=usize}); {=usize} parameters, {=usize} MACs, {=usize} bytes of weights in flash",
        INPUT, HIDDEN, HIDDEN, CLASSES, Network::<INPUT, HIDDEN, CLASSES>::PARAMETERS, macs, WEIGHT_BYTES
    );
    defmt::info!("inference has no dropout and no regularization: the artifact cannot express them");

    let mut scratch = Scratch::<INPUT, HIDDEN>::new();
    let mut logits = [0.0f32; CLASSES];
    let mut classes = [0usize; VECTORS.len()];
    let mut tally = Tally::default();
    let mut cycles: u64 = 0;
    for (i, vector) in VECTORS.iter().enumerate() {
        let input = vector.input_f32();
        let start = DWT::cycle_count();
        let class = core::hint::black_box(&NETWORK).predict(&input, &mut scratch, &mut logits);
        cycles += DWT::cycle_count().wrapping_sub(start) as u64;
        classes[i] = class;
        let ok = tally.record(class, vector.class, &logits, vector.logits_digest);
        defmt::info!(
            "vector {=usize}: class {=usize} host {=usize} {=bool} logits {=[?]}",
            i,
            class,
            vector.class,
            ok,
            logits_bits(&logits).as_slice()
        );
    }
    defmt::info!("{=usize}/{=usize} match host", tally.matched, tally.checked);
    let per_inference = cycles as f32 / VECTORS.len().max(1) as f32;
    defmt::info!("cost: {=f32} cycles per inference, {=f32} per MAC", per_inference, per_inference / macs as f32);

    let mut stepper = Stepper::new(VECTORS.len());
    loop {
        let shown = stepper.index();
        if show_class(&mut leds, classes.get(shown).copied().unwrap_or(0), true).is_err() {
            defmt::warn!("cannot drive the LEDs");
        }
        if let Ok(Some(next)) = stepper.poll(&mut button) {
            defmt::info!("vector {=usize}: class {=usize}", next, classes.get(next).copied().unwrap_or(0));
        }
        delay.delay_ms(10);
    }
}
