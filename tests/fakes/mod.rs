#![allow(dead_code)]
pub mod invoiceninja;
