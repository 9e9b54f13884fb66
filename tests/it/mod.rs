mod harness;

mod azure;
mod cleanup;
mod clients;
mod errors;
mod faults;
mod fixtures;
mod nodes;
mod packaging;
mod pause;
mod replicas;
mod restart;
mod rotation;
mod s3;
mod security;
mod snapshots;
mod walkthrough;
