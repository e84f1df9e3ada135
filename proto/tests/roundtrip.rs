//! Every core message survives the wire unchanged, and its encoded length is
//! exactly what `rumour_core::wire` computes: the simulator's byte
//! accounting is the real protobuf size, not an estimate.
//!
//! The component checks name the schema message whose size is off when the
//! whole-envelope check fails.
//! Case count: `PROPTEST_CASES` (default 256).

mod strategy;

use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use rumour_core::wire;
use rumour_proto::v1;
use rumour_proto::{
    datagram_envelope, decode_bytes, decode_datagram, decode_envelope, encode_envelope, Inbound,
};

use strategy::*;

proptest! {
    #[test]
    fn encoded_len_is_wire_message_len((from, msg) in envelope()) {
        let env = encode_envelope(from, &msg);
        prop_assert_eq!(
            env.encoded_len(),
            wire::message_len(&from, &msg),
            "{} from {}", msg.kind(), from
        );
        let body = env.body.as_ref().expect("encoding sets the body");
        prop_assert_eq!(body.encoded_len(), wire::len_field(wire::body_len(&msg)));
    }

    #[test]
    fn envelope_roundtrips((from, msg) in envelope()) {
        let env = encode_envelope(from, &msg);
        prop_assert_eq!(decode_envelope(env.clone()), Ok((from, msg.clone())));
        prop_assert_eq!(Inbound::try_from(env), Ok(Inbound { from, msg }));
    }

    #[test]
    fn bytes_roundtrip((from, msg) in envelope()) {
        let bytes = encode_envelope(from, &msg).encode_to_vec();
        prop_assert_eq!(bytes.len(), wire::message_len(&from, &msg));
        // A limit equal to the length admits it.
        prop_assert_eq!(decode_bytes(&bytes, bytes.len()), Ok((from, msg)));
    }

    #[test]
    fn a_datagram_without_its_sender_is_taken_from_its_source((from, msg) in envelope()) {
        let bytes = datagram_envelope(&msg).encode_to_vec();
        prop_assert_eq!(bytes.len(), wire::datagram_len(&msg));
        prop_assert_eq!(
            bytes.len() + wire::len_field(wire::addr_len(&from)),
            wire::message_len(&from, &msg)
        );
        prop_assert_eq!(decode_datagram(&bytes, bytes.len(), from), Ok((from, msg.clone())));
        // Outside a datagram nothing stands in for the sender.
        prop_assert!(decode_bytes(&bytes, bytes.len()).is_err());
        // A sender named in the envelope wins over the source.
        let named = encode_envelope(from, &msg).encode_to_vec();
        let elsewhere = "192.0.2.9:4000".parse().expect("an address");
        prop_assert_eq!(decode_datagram(&named, named.len(), elsewhere), Ok((from, msg)));
    }

    #[test]
    fn member_and_address_sizes(from in addr(), u in update()) {
        prop_assert_eq!(v1::Address::from(from).encoded_len(), wire::addr_len(&from));
        let wire_u = v1::MemberUpdate::from(&u);
        prop_assert_eq!(wire_u.encoded_len(), wire::update_len(&u));
        prop_assert_eq!(
            prost::length_delimiter_len(wire_u.encoded_len()) + 1 + wire_u.encoded_len(),
            wire::update_field_len(&u)
        );
    }

    #[test]
    fn data_sizes(d in datum(), id in datum_id(), entries in vec(digest_entry(), 0..5)) {
        if let rumour_core::Datum::Delta(delta) = &d {
            prop_assert_eq!(v1::Delta::from(delta).encoded_len(), wire::delta_len(delta));
            for r in &delta.records {
                prop_assert_eq!(v1::Versioned::from(r).encoded_len(), wire::versioned_len(r));
            }
        }
        if let rumour_core::Datum::Metadata(m) = &d {
            prop_assert_eq!(v1::Metadata::from(m).encoded_len(), wire::metadata_len(m));
        }
        prop_assert_eq!(v1::Datum::from(&d).encoded_len(), wire::datum_len(&d));
        prop_assert_eq!(v1::DatumId::from(&id).encoded_len(), wire::datum_id_len(&id));
        for e in &entries {
            prop_assert_eq!(v1::DigestEntry::from(e).encoded_len(), wire::digest_entry_len(e));
        }
        prop_assert_eq!(
            v1::Digest::from(entries.as_slice()).encoded_len(),
            wire::digest_len(&entries)
        );
    }
}
