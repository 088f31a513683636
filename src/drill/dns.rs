//! The drill's name server: answers every query on loopback with NXDOMAIN, so a connector whose
//! smart host is looked up there fails with 4.4.312 without any query leaving the machine.

use tokio::net::UdpSocket;

/// Length of a DNS message header.
const HEADER: usize = 12;

/// Answers queries on `socket` forever.
pub async fn serve(socket: UdpSocket) {
    let mut buffer = [0u8; 512];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if let Some(answer) = nxdomain(&buffer[..length]) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// The NXDOMAIN answer to `query`, echoing its question; `None` for anything that is not a
/// single-question query.
pub fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < HEADER || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let question_end = question_end(query)?;
    let mut answer = Vec::with_capacity(question_end);
    answer.extend_from_slice(&query[..2]);
    // QR, the query's opcode and RD, AA; RA; RCODE 3 (NXDOMAIN).
    answer.push(0x80 | (query[2] & 0x79) | 0x04);
    answer.push(0x80 | 0x03);
    answer.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    answer.extend_from_slice(&query[HEADER..question_end]);
    Some(answer)
}

/// Where the first question (name, type, class) ends.
fn question_end(query: &[u8]) -> Option<usize> {
    let mut at = HEADER;
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            at += 1;
            break;
        }
        if length > 63 {
            return None;
        }
        at += 1 + length;
    }
    let end = at + 4;
    (end <= query.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_query_with_nxdomain() {
        // id 0x1234, RD, one question: mail.drill.invalid A IN
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["mail", "drill", "invalid"] {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 1, 0, 1]);
        let answer = nxdomain(&query).expect("answer");
        assert_eq!(&answer[..2], &[0x12, 0x34]);
        assert_eq!(answer[2], 0x85);
        assert_eq!(answer[3] & 0x0f, 3);
        assert_eq!(&answer[HEADER..], &query[HEADER..]);
    }

    #[test]
    fn ignores_what_is_not_a_query() {
        assert_eq!(nxdomain(&[0; 5]), None);
        let mut response = vec![0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(nxdomain(&response), None);
        response[2] = 0;
        response.truncate(14);
        assert_eq!(nxdomain(&response), None);
    }
}
