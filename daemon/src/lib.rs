//! orderd — the order appliance of one restaurant.
//!
//! Layers, from the bottom: [`store`] (redb, group-commit [`store::writer`]), [`domain`]
//! (menu, tables, orders, analytics, retention), [`events`] (the log consumers follow),
//! [`api`] (HTTP), [`web`] (the pages), [`workers`] (background jobs), [`server`] (start-up and shutdown),
//! [`commands`] (the CLI). See `docs/ARCHITECTURE.md`.

pub mod account;
pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod demo;
pub mod domain;
pub mod error;
pub mod events;
pub mod files;
pub mod hub;
pub mod lan;
pub mod messaging;
pub mod metrics;
pub mod mqtt;
pub mod photos;
pub mod progress;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod site;
pub mod state;
pub mod status;
pub mod storage;
pub mod store;
pub mod systemd;
pub mod throttle;
pub mod tls;
pub mod upload;
pub mod web;
pub mod workers;

pub use server::{Running, start};
