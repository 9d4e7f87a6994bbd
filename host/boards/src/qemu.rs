//! QEMU's command line for a board it emulates (its machine and CPU from `firmware/boards.toml`;
//! the embedded default is mps2-an386, Cortex-M4F): semihosting for the defmt log and the exit
//! status, `-icount shift=0` so SysTick counts instructions.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::firmware::Board;

/// QEMU running `elf` on `board` with its serial port unconnected.
pub fn command(board: Board, elf: &Path) -> Command {
    with_serial(board, elf, "none")
}

/// QEMU running `elf` on `board` with its serial port connected to a Unix socket at `socket` that QEMU
/// listens on: the firmware starts once a client connects.
pub fn command_with_uart_socket(board: Board, elf: &Path, socket: &Path) -> Command {
    let mut cmd = with_serial(board, elf, "chardev:u0");
    cmd.arg("-chardev").arg(format!("socket,id=u0,path={},server=on,wait=on", socket.display()));
    cmd
}

fn with_serial(board: Board, elf: &Path, serial: &str) -> Command {
    let mut cmd = Command::new(board.spec().qemu_system());
    if let Some(qemu) = &board.spec().qemu {
        cmd.args(["-cpu", &qemu.cpu, "-machine", &qemu.machine]);
    }
    cmd.args(["-nographic", "-monitor", "none", "-serial", serial])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(elf);
    cmd
}

/// The QEMU that emulates `board`, without installing it; otherwise an error saying what to run.
pub fn find_for(board: Board) -> Result<()> {
    let program = board.spec().qemu_system();
    if crate::toolchain::on_path(program) {
        return Ok(());
    }
    let package = if board.spec().is_riscv() { "qemu-system-misc" } else { "qemu-system-arm" };
    bail!("{program} is missing: run `cargo xtask setup` first (or install it: sudo apt-get install {package})")
}

/// `qemu-system-arm`, which emulates the embedded default, without installing it; otherwise an
/// error saying what to run.
pub fn find() -> Result<()> {
    find_for(Board::qemu())
}

/// The lines of a firmware's log (what QEMU's semihosting wrote to its stdout): defmt frames
/// decoded with the table in its ELF (a malformed frame ends the log with an error), or the text a
/// firmware without defmt (a user's own) wrote.
pub fn log_lines(elf: &[u8], output: &[u8]) -> Result<Vec<String>> {
    match defmt_decoder::Table::parse(elf)? {
        Some(_) => defmt_lines(elf, output),
        None => Ok(String::from_utf8_lossy(output).lines().map(str::to_string).collect()),
    }
}

/// The lines of a firmware's defmt log (the raw frames QEMU's semihosting wrote to its stdout),
/// decoded with the table in its ELF; a malformed frame ends the log with an error.
pub fn defmt_lines(elf: &[u8], frames: &[u8]) -> Result<Vec<String>> {
    let table = defmt_decoder::Table::parse(elf)?.context("the ELF has no .defmt section")?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(frames);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(frame.display_message().to_string()),
            Err(defmt_decoder::DecodeError::UnexpectedEof) => return Ok(lines),
            Err(defmt_decoder::DecodeError::Malformed) => bail!("malformed defmt frame after {} lines", lines.len()),
        }
    }
}
