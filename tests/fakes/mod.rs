#![allow(dead_code)]
pub mod invoiceninja;
pub mod invoisx;
pub mod server;
