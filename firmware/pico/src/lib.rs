//! The Raspberry Pi Pico: an RP2040 (two Cortex-M0+ cores, this firmware runs on core 0; no FPU,
//! so f32 is soft-float; no DSP, so int8 takes the portable kernel) at 125 MHz from its 12 MHz
//! crystal, 2 MiB of QSPI flash behind the boot ROM's second stage (`BOOT2`), UART0 on GP0 (TX,
//! pin 1) and GP1 (RX, pin 2) at 115200 baud, the LED on GP25. The M0+ has no DWT cycle counter:
//! SysTick counts core cycles.
#![no_std]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use rp2040_hal::fugit::RateExtU32;
use rp2040_hal::gpio::{self, bank0};
use rp2040_hal::uart::{DataBits, Enabled, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{pac, Clock};

/// The second-stage bootloader the boot ROM copies from the first 256 bytes of flash: it sets up
/// the Pico's W25Q080 flash for execute-in-place.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XTAL_HZ: u32 = 12_000_000;
/// SysTick is a 24-bit down-counter.
const SYSTICK_MASK: u32 = 0x00ff_ffff;

/// UART0 on GP0 and GP1.
pub type Uart = UartPeripheral<
    Enabled,
    pac::UART0,
    (
        gpio::Pin<bank0::Gpio0, gpio::FunctionUart, gpio::PullDown>,
        gpio::Pin<bank0::Gpio1, gpio::FunctionUart, gpio::PullDown>,
    ),
>;
/// The LED.
pub type Led = gpio::Pin<bank0::Gpio25, gpio::FunctionSioOutput, gpio::PullDown>;

/// What the firmware uses of the board.
pub struct Pico {
    /// UART0, enabled at 115200 baud, 8N1.
    pub uart: Uart,
    /// The LED.
    pub led: Led,
}

/// Starts the clocks (125 MHz), SysTick as the cycle counter, UART0 and the LED. Call once.
pub fn init() -> Pico {
    let mut p = pac::Peripherals::take().expect("taken once");
    let core = pac::CorePeripherals::take().expect("taken once");
    let mut watchdog = rp2040_hal::Watchdog::new(p.WATCHDOG);
    let clocks = rp2040_hal::clocks::init_clocks_and_plls(
        XTAL_HZ,
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        &mut watchdog,
    )
    .ok()
    .expect("the crystal and the PLLs start");
    let mut syst = core.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_MASK);
    syst.clear_current();
    syst.enable_counter();
    let sio = rp2040_hal::Sio::new(p.SIO);
    let pins = gpio::Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    let uart = UartPeripheral::new(p.UART0, (pins.gpio0.into_function(), pins.gpio1.into_function()), &mut p.RESETS)
        .enable(UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One), clocks.peripheral_clock.freq())
        .ok()
        .expect("115200 baud from the peripheral clock");
    Pico { uart, led: pins.gpio25.into_push_pull_output() }
}

/// The cycle counter now (SysTick, counting down).
pub fn cycles_now() -> u32 {
    SYST::get_current()
}

/// Cycles from the reading `from` to the reading `to` (at most 2^24 - 1: 134 ms at 125 MHz).
pub fn cycles_between(from: u32, to: u32) -> u32 {
    from.wrapping_sub(to) & SYSTICK_MASK
}
