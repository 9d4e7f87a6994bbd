//! What the firmware of every board QEMU emulates shares: the defmt log over semihosting, ending
//! QEMU with an exit status, the panic handler, counting instructions ([`counter`]), and the two
//! programs each such board runs: the self-test ([`self_test`]) and the serving loop ([`serve`]).
//! A board crate adds its memory (`build.rs`), its serial port and its start-up (`cortex-m-rt` or
//! `riscv-rt`).
#![no_std]

#[cfg(target_arch = "arm")]
pub mod cmsdk_uart;
pub mod counter;
pub mod serial;

use core::hint::black_box;

use defmt_semihosting as _;
use dropship_app::{announce, check_vectors};
use dropship_link::CostUnit;
use dropship_model::{Model, ModelScratch, Server, DIGEST, NETWORK, OUTPUTS, SHAPE, VECTORS};

/// Runs every embedded vector, compares each with the host's, logs the verdict and the cost per
/// inference in instructions, and ends QEMU: status 0 when every vector matched.
pub fn self_test() -> ! {
    counter::start();
    announce(&SHAPE);
    let per_tick = counter::instructions_per_tick();
    let mut scratch = ModelScratch::new();
    let mut logits = [0.0f32; OUTPUTS];
    let checked = check_vectors(&VECTORS, &mut logits, |input, logits| {
        let start = counter::ticks_now();
        let class = black_box(&NETWORK).predict(black_box(input), &mut scratch, logits);
        (class, counter::ticks_since(start))
    });
    let instructions = checked.cost as f32 * per_tick / VECTORS.len().max(1) as f32;
    defmt::info!(
        "cost: {=f32} instructions per inference, {=f32} per MAC ({=f32} instructions per {=str} tick)",
        instructions,
        instructions / SHAPE.macs as f32,
        per_tick,
        counter::NAME
    );
    exit(checked.tally.all_match())
}

/// Serves `dropship validate` on the board's serial port (`rx`, `tx`) for ever, introducing itself
/// as `board`, each inference's cost in instructions.
pub fn serve<R, W>(board: &'static str, mut rx: R, mut tx: W) -> !
where
    R: embedded_io::Read,
    W: embedded_io::Write<Error = R::Error>,
{
    counter::start();
    announce(&SHAPE);
    let per_tick = counter::instructions_per_tick();
    let mut model = Model::new();
    let mut server = Server::new();
    let mut served = model.served(board, CostUnit::Instructions, counter::ticks_now, |from, to| {
        (counter::ticks_between(from, to) as f32 * per_tick + 0.5) as u32
    });
    defmt::info!("serving on the serial port, model digest {=u64:#018x}", DIGEST);
    loop {
        // a read error loses bytes: the host sees a corrupted frame and asks again
        if let Ok(()) = dropship_link::serve(&mut server, &mut rx, &mut tx, &mut served) {
            fail("the serial port ended");
        }
    }
}

/// Logs why and ends QEMU with a failure status (no panic machinery, no formatting code in flash).
pub fn fail(why: &str) -> ! {
    defmt::error!("{=str}", why);
    exit(false)
}

/// Ends QEMU through semihosting: status 0 on `success`, 1 otherwise.
pub fn exit(success: bool) -> ! {
    #[cfg(target_arch = "arm")]
    {
        use cortex_m_semihosting::debug;
        debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    }
    #[cfg(target_arch = "riscv32")]
    semihosting::process::exit(if success { 0 } else { 1 });
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // The location only: formatting the message would pull core::fmt into flash.
    match info.location() {
        Some(l) => defmt::error!("panic at {=str}:{=u32}", l.file(), l.line()),
        None => defmt::error!("panic"),
    }
    exit(false)
}
