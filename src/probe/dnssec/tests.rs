//! Reading responses without a name server: statuses and their order, failures of error codes
//! and validator errors, CNAME chains with the weakest verdict, extended DNS errors.

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{DnsResponse, Edns, Message, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::opt::EdnsOption;
use hickory_resolver::proto::rr::rdata::{A, CNAME};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::answer::{
    EDNS_EXTENDED_ERROR, answer, chain_status, extended_errors, failure_of, failure_of_code,
};
use super::{DnssecStatus, Lookup};
use crate::outcome::DnsFailure;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn a(owner: &str, proof: Proof) -> Record {
    let mut record = Record::from_rdata(name(owner), 60, RData::A(A::new(127, 0, 0, 1)));
    record.proof = proof;
    record
}

fn cname(owner: &str, target: &str, proof: Proof) -> Record {
    let mut record = Record::from_rdata(name(owner), 60, RData::CNAME(CNAME(name(target))));
    record.proof = proof;
    record
}

fn response(code: ResponseCode, answers: Vec<Record>) -> DnsResponse {
    let mut message = Message::response(1, OpCode::Query);
    message.metadata.response_code = code;
    message.add_query(Query::query(name("www.example.test."), RecordType::A));
    message.insert_answers(answers);
    DnsResponse::from_message(message).unwrap()
}

#[test]
fn statuses_have_their_label_values_and_an_order() {
    let labels: Vec<&str> = DnssecStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(labels, ["secure", "insecure", "bogus", "indeterminate"]);
    use DnssecStatus::*;
    assert_eq!(Secure.worst(Insecure), Insecure);
    assert_eq!(Insecure.worst(Indeterminate), Indeterminate);
    assert_eq!(Bogus.worst(Indeterminate), Bogus);
    assert_eq!(Indeterminate.worst(Bogus), Bogus);
    assert_eq!(Secure.worst(Secure), Secure);
}

#[test]
fn error_codes_and_errors_map_to_dns_failures() {
    assert_eq!(
        failure_of_code(ResponseCode::ServFail),
        DnsFailure::Servfail
    );
    assert_eq!(failure_of_code(ResponseCode::FormErr), DnsFailure::Servfail);
    assert_eq!(failure_of_code(ResponseCode::Refused), DnsFailure::Refused);
    assert_eq!(
        failure_of_code(ResponseCode::NXDomain),
        DnsFailure::Nxdomain
    );
    assert_eq!(failure_of(&NetError::Timeout), DnsFailure::Timeout);
    assert_eq!(
        failure_of(&NetError::Dns(DnsError::ResponseCode(
            ResponseCode::Refused
        ))),
        DnsFailure::Refused
    );
}

#[test]
fn answers_follow_cnames_and_take_the_weakest_verdict() {
    let owner = name("www.example.test.");
    let answers = vec![
        cname("www.example.test.", "host.example.test.", Proof::Secure),
        a("host.example.test.", Proof::Secure),
        a("other.example.test.", Proof::Bogus),
    ];
    let found = answer(
        &response(ResponseCode::NoError, answers.clone()),
        &owner,
        RecordType::A,
        DnssecStatus::Secure,
    );
    assert_eq!(found.records.unwrap().len(), 1);
    assert_eq!(
        chain_status(&answers, &owner, RecordType::A),
        DnssecStatus::Secure
    );
    let insecure_alias = vec![
        cname("www.example.test.", "host.example.test.", Proof::Insecure),
        a("host.example.test.", Proof::Secure),
    ];
    assert_eq!(
        chain_status(&insecure_alias, &owner, RecordType::A),
        DnssecStatus::Insecure
    );
    let looping = vec![
        cname("www.example.test.", "loop.example.test.", Proof::Secure),
        cname("loop.example.test.", "www.example.test.", Proof::Secure),
    ];
    let none = answer(
        &response(ResponseCode::NoError, looping),
        &owner,
        RecordType::A,
        DnssecStatus::Secure,
    );
    assert_eq!(none.records, Err(DnsFailure::NoRecords));
    let nx = answer(
        &response(ResponseCode::NXDomain, vec![]),
        &owner,
        RecordType::A,
        DnssecStatus::Insecure,
    );
    assert_eq!(
        nx,
        Lookup::failed(DnssecStatus::Insecure, DnsFailure::Nxdomain)
    );
    let servfail = answer(
        &response(ResponseCode::ServFail, vec![]),
        &owner,
        RecordType::A,
        DnssecStatus::Indeterminate,
    );
    assert_eq!(servfail.records, Err(DnsFailure::Servfail));
}

#[test]
fn reads_extended_dns_errors() {
    let mut message = response(ResponseCode::ServFail, vec![]).into_message();
    let mut edns = Edns::new();
    edns.options_mut()
        .insert(EdnsOption::Unknown(EDNS_EXTENDED_ERROR, vec![0, 7]));
    edns.options_mut()
        .insert(EdnsOption::Unknown(EDNS_EXTENDED_ERROR, vec![0, 22, b'x']));
    edns.options_mut()
        .insert(EdnsOption::Unknown(10, vec![1; 8]));
    message.set_edns(edns);
    let bytes = message.to_vec().unwrap();
    let decoded = DnsResponse::from_buffer(bytes).unwrap();
    assert_eq!(extended_errors(&decoded).collect::<Vec<_>>(), vec![7, 22]);
}
