mod harness;

mod cleanup;
mod clients;
mod errors;
mod fixtures;
mod packaging;
mod restart;
mod security;
mod snapshots;
mod walkthrough;
