//! Writes this board's memory.x from firmware/boards.toml (with the RP2040's boot2 region) and
//! checks the model fits it.
fn main() {
    dropship_board_list::configure_board();
}
