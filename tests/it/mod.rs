mod harness;

mod cleanup;
mod clients;
mod errors;
mod fixtures;
mod packaging;
mod pause;
mod restart;
mod security;
mod snapshots;
mod walkthrough;
