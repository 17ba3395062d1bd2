//! RFC 3161 timestamps of report signatures (what makes a PAdES signature B-T).
//!
//! After the report is signed, the SHA-256 of the signature value is sent to a timestamp
//! authority (TSA) as a `TimeStampReq`; the token it returns (a CMS SignedData over a
//! `TSTInfo` that holds the hash and the TSA's time) goes into the signer's unsigned
//! attributes as `id-aa-signatureTimeStampToken`. Anyone can then check that the signature
//! existed at that time, on the TSA's word rather than the server's clock.
//!
//! How the request travels (HTTP, `application/timestamp-query`) is the caller's: this crate
//! does no network I/O ([`TimestampAuthority`]).

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::signing::SigningError;

/// `id-ct-TSTInfo`: the content type of a timestamp token's content.
const ID_CT_TST_INFO: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// `id-aa-signatureTimeStampToken`: the unsigned attribute that carries the token.
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// A timestamp authority: takes a DER `TimeStampReq`, returns the DER `TimeStampResp`.
pub trait TimestampAuthority {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, String>;
    /// The certificates (DER) its tokens must be signed by or under: its own, or the CA that
    /// issues it. A token from anyone else is refused.
    fn anchors(&self) -> Vec<Vec<u8>>;
}

/// A timestamp request for one signature value, kept to check the answer against.
pub struct Request {
    pub der: Vec<u8>,
    imprint: Vec<u8>,
    nonce: Int,
}

fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ID_SHA_256,
        parameters: None,
    }
}

fn bad(what: &str) -> impl Fn(der::Error) -> SigningError + '_ {
    move |e| SigningError::Timestamp(format!("{what}: {e}"))
}

/// The request for a timestamp of `signature_value` (SHA-256 imprint, a random nonce, the
/// TSA's certificate asked for so that the token can be checked on its own).
pub fn request(signature_value: &[u8]) -> Result<Request, SigningError> {
    let imprint = Sha256::digest(signature_value).to_vec();
    // A positive 64-bit nonce, minimally encoded (first byte non-zero, high bit clear).
    let mut bytes: [u8; 8] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    let nonce = Int::new(&bytes).map_err(bad("nonce"))?;
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: sha256_algorithm(),
            hashed_message: OctetString::new(imprint.clone()).map_err(bad("imprint"))?,
        },
        req_policy: None,
        nonce: Some(nonce.clone()),
        cert_req: true,
        extensions: None,
    };
    Ok(Request {
        der: req.to_der().map_err(bad("request"))?,
        imprint,
        nonce,
    })
}

/// Asks `tsa` for a timestamp of `signature_value`; returns the token once it is checked to
/// be granted, for this hash and nonce, signed by a time-stamping certificate bound to the
/// signature, and that certificate one of the authority's anchors or issued by one.
pub fn obtain(
    tsa: &dyn TimestampAuthority,
    signature_value: &[u8],
) -> Result<ContentInfo, SigningError> {
    let req = request(signature_value)?;
    let answer = tsa.exchange(&req.der).map_err(SigningError::Timestamp)?;
    let token = token_from_response(&answer, &req)?;
    let stamp = check(&token, signature_value)?;
    if !stamp.valid() {
        return Err(SigningError::Timestamp(format!(
            "the token does not check ({stamp:?})"
        )));
    }
    let anchors = tsa.anchors();
    if !stamp.trusted_by(&anchors) {
        return Err(SigningError::Timestamp(format!(
            "the token is signed by \"{}\" (certificate SHA-256 {}), which is not the \
             configured authority's certificate nor issued by it",
            stamp.authority, stamp.authority_sha256
        )));
    }
    Ok(token)
}

/// The token of a TSA's answer to `req`, checked.
pub fn token_from_response(answer: &[u8], req: &Request) -> Result<ContentInfo, SigningError> {
    let resp = TimeStampResp::from_der(answer).map_err(bad("the TSA's answer is not RFC 3161"))?;
    // PKIStatus: granted (0) or granted with modifications (1).
    let status = resp.status.status as u8;
    if status > 1 {
        let text = resp
            .status
            .status_string
            .as_ref()
            .map(|texts| {
                texts
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        return Err(SigningError::Timestamp(format!(
            "the TSA refused the request (status {status}) {text}"
        )));
    }
    let token = resp
        .time_stamp_token
        .ok_or_else(|| SigningError::Timestamp("the TSA granted but sent no token".into()))?;
    let (info, _) = tst_info(&token)?;
    if info.nonce.as_ref() != Some(&req.nonce) {
        return Err(SigningError::Timestamp(
            "the token does not answer this request (nonce differs)".into(),
        ));
    }
    if info.message_imprint.hash_algorithm.oid != const_oid::db::rfc5912::ID_SHA_256
        || info.message_imprint.hashed_message.as_bytes() != req.imprint.as_slice()
    {
        return Err(SigningError::Timestamp(
            "the token stamps another hash than the one asked".into(),
        ));
    }
    Ok(token)
}

/// What checking a signature's timestamp found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The TSA's time (`genTime`), RFC 3339 in UTC.
    pub time: String,
    /// The TSA certificate's subject.
    pub authority: String,
    /// Hex SHA-256 of the TSA certificate's DER (to compare with the TSA's published one).
    pub authority_sha256: String,
    /// The token stamps the SHA-256 (or SHA-384/512) of this very signature value.
    pub imprint_matches: bool,
    /// The TSA's signature over the token verifies with the certificate it carries, the
    /// signed digest is that of the token's content, and the signed ESS signing-certificate
    /// attribute names that certificate (so it cannot be swapped for another with the key).
    pub signature_verifies: bool,
    /// That certificate is for time-stamping (extended key usage `id-kp-timeStamping`).
    pub time_stamping_certificate: bool,
    /// The TSA certificate (DER), to check against a trusted authority ([`Stamp::trusted_by`]).
    pub authority_der: Vec<u8>,
}

impl Stamp {
    /// The token stamps this signature and is soundly signed by a time-stamping certificate.
    /// Whose certificate that is, is [`Stamp::trusted_by`]'s question.
    pub fn valid(&self) -> bool {
        self.imprint_matches && self.signature_verifies && self.time_stamping_certificate
    }

    /// The TSA certificate is one of `anchors` (DER) or issued by one of them.
    pub fn trusted_by(&self, anchors: &[Vec<u8>]) -> bool {
        anchors.iter().any(|a| issued_by(&self.authority_der, a))
    }
}

/// `cert` (DER) is `anchor` (DER), or names it as issuer and carries its valid signature.
pub fn issued_by(cert: &[u8], anchor: &[u8]) -> bool {
    if cert == anchor {
        return true;
    }
    let (Ok(cert), Ok(anchor)) = (Certificate::from_der(cert), Certificate::from_der(anchor))
    else {
        return false;
    };
    cert.tbs_certificate.issuer == anchor.tbs_certificate.subject
        && match (cert.tbs_certificate.to_der(), cert.signature.as_bytes()) {
            (Ok(tbs), Some(signature)) => verify_signature(
                &anchor,
                &const_oid::db::rfc5912::ID_SHA_256,
                &cert.signature_algorithm,
                &tbs,
                signature,
            ),
            _ => false,
        }
}

/// The ESS signing-certificate(-v2) attribute (RFC 2634 / RFC 5035) names `cert`: its first
/// entry's hash is the certificate's (SHA-1 for v1; SHA-256 by default, or as stated, for v2).
fn ess_names(attributes: &cms::signed_data::SignedAttributes, cert: &[u8]) -> bool {
    use const_oid::db::rfc5911::{ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V_2};
    #[derive(der::Sequence)]
    struct EssCertIdV2 {
        #[asn1(optional = "true")]
        hash_algorithm: Option<AlgorithmIdentifierOwned>,
        cert_hash: OctetString,
        #[asn1(optional = "true")]
        issuer_serial: Option<der::Any>,
    }
    #[derive(der::Sequence)]
    struct SigningCertificateV2 {
        certs: Vec<EssCertIdV2>,
        #[asn1(optional = "true")]
        policies: Option<der::Any>,
    }
    #[derive(der::Sequence)]
    struct EssCertId {
        cert_hash: OctetString,
        #[asn1(optional = "true")]
        issuer_serial: Option<der::Any>,
    }
    #[derive(der::Sequence)]
    struct SigningCertificate {
        certs: Vec<EssCertId>,
        #[asn1(optional = "true")]
        policies: Option<der::Any>,
    }
    let value = |oid| {
        attributes
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    if let Some(v) = value(ID_AA_SIGNING_CERTIFICATE_V_2) {
        return v
            .decode_as::<SigningCertificateV2>()
            .ok()
            .and_then(|sc| sc.certs.into_iter().next())
            .is_some_and(|id| {
                let algorithm = id
                    .hash_algorithm
                    .map_or(const_oid::db::rfc5912::ID_SHA_256, |a| a.oid);
                digest(&algorithm, cert).is_some_and(|d| d == id.cert_hash.as_bytes())
            });
    }
    if let Some(v) = value(ID_AA_SIGNING_CERTIFICATE) {
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert);
        return v
            .decode_as::<SigningCertificate>()
            .ok()
            .and_then(|sc| sc.certs.into_iter().next())
            .is_some_and(|id| id.cert_hash.as_bytes() == sha1.as_ref());
    }
    false
}

/// The certificate allows time-stamping (extended key usage `id-kp-timeStamping`).
fn for_time_stamping(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .ok()
        .flatten()
        .is_some_and(|(_, usage)| {
            usage
                .0
                .contains(&const_oid::db::rfc5280::ID_KP_TIME_STAMPING)
        })
}

fn tst_info(token: &ContentInfo) -> Result<(TstInfo, Vec<u8>), SigningError> {
    let signed: SignedData = token
        .content
        .decode_as()
        .map_err(bad("the token is not CMS SignedData"))?;
    if signed.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(SigningError::Timestamp(
            "the token's content is not a TSTInfo".into(),
        ));
    }
    let content = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| SigningError::Timestamp("the token has no content".into()))?;
    let octets = content
        .decode_as::<OctetString>()
        .map_err(bad("the token's content"))?;
    let info = TstInfo::from_der(octets.as_bytes()).map_err(bad("the token's TSTInfo"))?;
    Ok((info, octets.as_bytes().to_vec()))
}

struct Verified {
    signature_verifies: bool,
    time_stamping_certificate: bool,
    authority: String,
    authority_sha256: String,
    authority_der: Vec<u8>,
}

/// Verifies the TSA's CMS signature over the token with the signer certificate the token
/// carries (ECDSA P-256/P-384 or RSA PKCS#1 v1.5, SHA-256/384/512).
fn verify_token(token: &ContentInfo) -> Result<Verified, SigningError> {
    let signed: SignedData = token
        .content
        .decode_as()
        .map_err(bad("the token is not CMS SignedData"))?;
    let (_, content) = tst_info(token)?;
    let signer = signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| SigningError::Timestamp("the token names no signer".into()))?;
    let cert = crate::signing::signer_certificate(&signed, &signer.sid).ok_or_else(|| {
        SigningError::Timestamp("the token does not carry its signer's certificate".into())
    })?;
    let authority = cert.tbs_certificate.subject.to_string();
    let authority_der = cert.to_der().map_err(bad("the TSA certificate"))?;
    let authority_sha256 = hex::encode(Sha256::digest(&authority_der));
    let time_stamping_certificate = for_time_stamping(cert);
    let Some(attributes) = signer.signed_attrs.as_ref() else {
        return Ok(Verified {
            signature_verifies: false,
            time_stamping_certificate,
            authority,
            authority_sha256,
            authority_der,
        });
    };
    let digest_of_content = digest(&signer.digest_alg.oid, &content);
    let signed_digest = attributes
        .iter()
        .find(|a| a.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<OctetString>().ok());
    let digest_matches = match (&digest_of_content, &signed_digest) {
        (Some(d), Some(s)) => s.as_bytes() == d.as_slice(),
        _ => false,
    };
    let signature_verifies = digest_matches
        && ess_names(attributes, &authority_der)
        && attributes.to_der().is_ok_and(|message| {
            verify_signature(
                cert,
                &signer.digest_alg.oid,
                &signer.signature_algorithm,
                &message,
                signer.signature.as_bytes(),
            )
        });
    Ok(Verified {
        signature_verifies,
        time_stamping_certificate,
        authority,
        authority_sha256,
        authority_der,
    })
}

fn digest(algorithm: &der::oid::ObjectIdentifier, bytes: &[u8]) -> Option<Vec<u8>> {
    use const_oid::db::rfc5912::{ID_SHA_256, ID_SHA_384, ID_SHA_512};
    match *algorithm {
        ID_SHA_256 => Some(Sha256::digest(bytes).to_vec()),
        ID_SHA_384 => Some(Sha384::digest(bytes).to_vec()),
        ID_SHA_512 => Some(Sha512::digest(bytes).to_vec()),
        _ => None,
    }
}

fn verify_signature(
    cert: &Certificate,
    digest_algorithm: &der::oid::ObjectIdentifier,
    signature_algorithm: &AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use const_oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, ID_SHA_256, ID_SHA_384,
        ID_SHA_512, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1, SHA_256_WITH_RSA_ENCRYPTION,
        SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    use ring::signature as sig;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::oid::ObjectIdentifier>().ok());
    let algorithm: &dyn sig::VerificationAlgorithm = match (
        spki.algorithm.oid,
        signature_algorithm.oid,
        *digest_algorithm,
    ) {
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_256, _) if curve == Some(SECP_256_R_1) => {
            &sig::ECDSA_P256_SHA256_ASN1
        }
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_384, _) if curve == Some(SECP_256_R_1) => {
            &sig::ECDSA_P256_SHA384_ASN1
        }
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_256, _) if curve == Some(SECP_384_R_1) => {
            &sig::ECDSA_P384_SHA256_ASN1
        }
        (ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA_384, _) if curve == Some(SECP_384_R_1) => {
            &sig::ECDSA_P384_SHA384_ASN1
        }
        (RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION, _)
        | (RSA_ENCRYPTION, RSA_ENCRYPTION, ID_SHA_256) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, _)
        | (RSA_ENCRYPTION, RSA_ENCRYPTION, ID_SHA_384) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION, _)
        | (RSA_ENCRYPTION, RSA_ENCRYPTION, ID_SHA_512) => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return false,
    };
    sig::UnparsedPublicKey::new(algorithm, key)
        .verify(message, signature)
        .is_ok()
}

/// Checks a signature's timestamp token against the signature value it claims to stamp.
pub fn check(token: &ContentInfo, signature_value: &[u8]) -> Result<Stamp, SigningError> {
    let (info, _) = tst_info(token)?;
    let imprint = digest(&info.message_imprint.hash_algorithm.oid, signature_value);
    let verified = verify_token(token)?;
    Ok(Stamp {
        time: info.gen_time.to_date_time().to_string(),
        authority: verified.authority,
        authority_sha256: verified.authority_sha256,
        imprint_matches: imprint
            .is_some_and(|d| d.as_slice() == info.message_imprint.hashed_message.as_bytes()),
        signature_verifies: verified.signature_verifies,
        time_stamping_certificate: verified.time_stamping_certificate,
        authority_der: verified.authority_der,
    })
}

/// A timestamp authority for tests: OpenSSL's `openssl ts -reply` with a self-signed TSA
/// certificate (critical extended key usage `timeStamping`), EC P-256 or RSA 2048.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::path::Path;
    use std::process::Command;

    pub struct OpenSslTsa {
        dir: tempfile::TempDir,
    }

    fn run(command: &mut Command) -> Result<Vec<u8>, String> {
        let out = command
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }

    impl OpenSslTsa {
        /// A TSA with a new key: `rsa` for RSA 2048, else EC P-256.
        pub fn new(rsa: bool) -> Result<OpenSslTsa, String> {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let key = if rsa {
                vec!["-newkey", "rsa:2048"]
            } else {
                vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
            };
            run(Command::new("openssl")
                .current_dir(dir.path())
                .args(["req", "-x509", "-nodes", "-days", "30"])
                .args(key)
                .args(["-keyout", "tsa.key", "-out", "tsa.pem"])
                .args(["-subj", "/O=Test/CN=Test TSA"])
                .args(["-addext", "extendedKeyUsage=critical,timeStamping"])
                .args(["-addext", "keyUsage=critical,digitalSignature"]))?;
            let d = dir.path().display();
            let config = format!(
                "[ tsa ]\ndefault_tsa = tsa_config1\n[ tsa_config1 ]\ndir = {d}\n\
                 serial = $dir/serial\ncrypto_device = builtin\nsigner_cert = $dir/tsa.pem\n\
                 signer_key = $dir/tsa.key\nsigner_digest = sha256\n\
                 default_policy = 1.3.6.1.4.1.99999.1\ndigests = sha256, sha384, sha512\n\
                 accuracy = secs:1\nordering = no\ntsa_name = yes\n\
                 ess_cert_id_chain = no\ness_cert_id_alg = sha256\n"
            );
            std::fs::write(dir.path().join("tsa.cnf"), config).map_err(|e| e.to_string())?;
            std::fs::write(dir.path().join("serial"), "01\n").map_err(|e| e.to_string())?;
            Ok(OpenSslTsa { dir })
        }

        /// The TSA's certificate (PEM).
        pub fn certificate_pem(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("tsa.pem")).unwrap_or_default()
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        /// Answers one DER request with OpenSSL's DER response.
        pub fn reply(&self, request: &[u8]) -> Result<Vec<u8>, String> {
            // One file pair per request: a TSA may answer several requests at once.
            let id = format!("{:016x}", rand::random::<u64>());
            let query = self.path(&format!("{id}.tsq"));
            let answer = self.path(&format!("{id}.tsr"));
            std::fs::write(&query, request).map_err(|e| e.to_string())?;
            let config: &Path = &self.path("tsa.cnf");
            let result = run(Command::new("openssl")
                .args(["ts", "-reply", "-config"])
                .arg(config)
                .arg("-queryfile")
                .arg(&query)
                .arg("-out")
                .arg(&answer));
            let bytes = result.and_then(|_| std::fs::read(&answer).map_err(|e| e.to_string()));
            let _ = std::fs::remove_file(&query);
            let _ = std::fs::remove_file(&answer);
            bytes
        }
    }

    impl super::TimestampAuthority for OpenSslTsa {
        fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, String> {
            self.reply(request)
        }

        fn anchors(&self) -> Vec<Vec<u8>> {
            crate::signing::certificates_der(&self.certificate_pem())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{certificates_der, create_identity};

    #[test]
    fn a_certificate_is_trusted_when_it_is_the_anchor_or_issued_by_it() {
        let id = create_identity("t").unwrap();
        let leaf = certificates_der(&id.signing_cert_pem).remove(0);
        let ca = certificates_der(&id.ca_cert_pem).remove(0);
        assert!(issued_by(&leaf, &leaf));
        assert!(issued_by(&leaf, &ca));
        assert!(!issued_by(&ca, &leaf));
        let other = certificates_der(&create_identity("o").unwrap().ca_cert_pem).remove(0);
        assert!(
            !issued_by(&leaf, &other),
            "another CA of the same name shape"
        );
        assert!(!issued_by(b"not der", &ca));
    }
}
