//! PAdES signatures of evidence reports, and the certificates behind them.
//!
//! A deployment has its own small PKI, created on first use: a CA certificate (publishable,
//! so that anyone can check reports) and a report-signing certificate issued by it, both
//! ECDSA P-256. A report is signed by an incremental update that adds a signature field
//! (`/Filter /Adobe.PPKLite`, `/SubFilter /ETSI.CAdES.detached`) whose `/Contents` is a
//! detached CMS SignedData over the whole file except the `/Contents` value itself (the two
//! `/ByteRange` spans), with the signing-certificate-v2 attribute that PAdES requires, and
//! the leaf and CA certificates embedded. The same revision adds a document security store
//! (`/DSS`, ETSI EN 319 142-1) holding the CA chain, so that the validation material travels
//! with the file. With a timestamp authority configured, the signature also carries an
//! RFC 3161 timestamp of its value ([`crate::timestamp`]): PAdES B-T.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::{DecodePem, Encode};
use lopdf::{dictionary, IncrementalDocument, Object, StringFormat};
use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::timestamp::{self, Stamp, TimestampAuthority};

/// Room reserved for the CMS signature in the file (its DER is about 1.1 KB alone; a
/// timestamp token with the TSA's certificates adds 1.5 to 8 KB).
const SIGNATURE_BYTES: usize = 32768;
/// Written in place of the byte ranges until they are known (same width as the final text).
const BYTE_RANGE_PLACEHOLDER: &[u8] = b"[0 9999999999 9999999999 9999999999]";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot create the report certificates: {0}")]
    Certificates(String),
    #[error("the report signing key or certificate is unreadable: {0}")]
    Identity(String),
    #[error("the report PDF cannot be read: {0}")]
    Pdf(String),
    #[error("cannot build the signature: {0}")]
    Cms(String),
    #[error("no readable signature: {0}")]
    Unsigned(String),
    #[error("no timestamp for the signature: {0}")]
    Timestamp(String),
}

impl SigningError {
    pub fn code(&self) -> &'static str {
        match self {
            SigningError::Certificates(_) | SigningError::Identity(_) => "report_identity",
            SigningError::Pdf(_) => "report_pdf",
            SigningError::Cms(_) => "report_signature",
            SigningError::Unsigned(_) => "unsigned",
            SigningError::Timestamp(_) => "timestamp_unavailable",
        }
    }
}

/// A new deployment's report PKI, as PEM texts to store.
pub struct NewIdentity {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub signing_cert_pem: String,
    pub signing_key_pem: String,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "leaktrace");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Creates the CA and the report-signing certificate issued by it (valid ten years).
pub fn create_identity(deployment: &str) -> Result<NewIdentity, SigningError> {
    let fail = |e: rcgen::Error| SigningError::Certificates(e.to_string());
    // Valid from the start of this year for ten years.
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = 1970 + (seconds / 31_556_952) as i32;
    let now = rcgen::date_time_ymd(year, 1, 1);
    let until = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.distinguished_name = name(&format!("leaktrace evidence CA ({deployment})"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (now, until);
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    leaf.distinguished_name = name(&format!("leaktrace report signing ({deployment})"));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    (leaf.not_before, leaf.not_after) = (now, until);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;
    Ok(NewIdentity {
        ca_cert_pem: ca_cert.pem(),
        ca_key_pem: ca_key.serialize_pem(),
        signing_cert_pem: leaf_cert.pem(),
        signing_key_pem: leaf_key.serialize_pem(),
    })
}

/// What signs reports: the signing key and certificate, and the CA certificate.
pub struct ReportSigner {
    key: p256::ecdsa::SigningKey,
    cert: Certificate,
    ca: Certificate,
}

impl ReportSigner {
    pub fn from_pem(
        signing_cert_pem: &str,
        signing_key_pem: &str,
        ca_cert_pem: &str,
    ) -> Result<ReportSigner, SigningError> {
        let bad = |what: &str, e: String| SigningError::Identity(format!("{what}: {e}"));
        Ok(ReportSigner {
            key: p256::ecdsa::SigningKey::from_pkcs8_pem(signing_key_pem)
                .map_err(|e| bad("signing key", e.to_string()))?,
            cert: Certificate::from_pem(signing_cert_pem)
                .map_err(|e| bad("signing certificate", e.to_string()))?,
            ca: Certificate::from_pem(ca_cert_pem)
                .map_err(|e| bad("CA certificate", e.to_string()))?,
        })
    }

    /// Hex SHA-256 of the signing certificate's DER (stored with each report).
    pub fn certificate_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.cert.to_der().unwrap_or_default()))
    }

    /// Signs `pdf` (as printpdf wrote it) with a PAdES signature dated `date`
    /// (`D:YYYYMMDDHHmmSSZ`), timestamped by `tsa` when given (B-T; no file without the
    /// timestamp then); returns the signed file.
    pub fn sign(
        &self,
        pdf: &[u8],
        date: &str,
        tsa: Option<&dyn TimestampAuthority>,
    ) -> Result<Vec<u8>, SigningError> {
        let chain = [&self.cert, &self.ca]
            .iter()
            .map(|c| c.to_der())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SigningError::Identity(e.to_string()))?;
        let (mut out, contents) = with_signature_field(pdf, date, &chain)?;
        let digest = {
            let mut h = Sha256::new();
            h.update(&out[..contents.start]);
            h.update(&out[contents.end..]);
            h.finalize().to_vec()
        };
        let mut der = self.signed_data(&digest)?;
        if let Some(tsa) = tsa {
            der = with_timestamp(&der, tsa)?;
        }
        if der.len() > SIGNATURE_BYTES {
            return Err(SigningError::Cms(format!(
                "the signature ({} bytes) exceeds its reserved room",
                der.len()
            )));
        }
        let mut text = hex::encode(&der);
        text.push_str(&"0".repeat(SIGNATURE_BYTES * 2 - text.len()));
        out[contents.start + 1..contents.end - 1].copy_from_slice(text.as_bytes());
        Ok(out)
    }

    /// A detached CMS signature (DER) of `content`, timestamped by `tsa` when given.
    pub fn sign_detached(
        &self,
        content: &[u8],
        tsa: Option<&dyn TimestampAuthority>,
    ) -> Result<Vec<u8>, SigningError> {
        let der = self.signed_data(&Sha256::digest(content))?;
        match tsa {
            Some(tsa) => with_timestamp(&der, tsa),
            None => Ok(der),
        }
    }

    fn signed_data(&self, digest: &[u8]) -> Result<Vec<u8>, SigningError> {
        let fail = |e: &dyn std::fmt::Display| SigningError::Cms(e.to_string());
        let content = EncapsulatedContentInfo {
            econtent_type: const_oid::db::rfc5911::ID_DATA,
            econtent: None,
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        });
        let sha256 = spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_256,
            parameters: None,
        };
        let mut signer =
            SignerInfoBuilder::new(&self.key, sid, sha256.clone(), &content, Some(digest))
                .map_err(|e| fail(&e))?;
        signer
            .add_signed_attribute(signing_certificate_v2(&self.cert)?)
            .map_err(|e| fail(&e))?;
        let info = SignedDataBuilder::new(&content)
            .add_digest_algorithm(sha256)
            .map_err(|e| fail(&e))?
            .add_certificate(CertificateChoices::Certificate(self.cert.clone()))
            .map_err(|e| fail(&e))?
            .add_certificate(CertificateChoices::Certificate(self.ca.clone()))
            .map_err(|e| fail(&e))?
            .add_signer_info::<_, p256::ecdsa::DerSignature>(signer)
            .map_err(|e| fail(&e))?
            .build()
            .map_err(|e| fail(&e))?;
        info.to_der().map_err(|e| fail(&e))
    }
}

/// Adds an RFC 3161 timestamp of the signature value to the signer's unsigned attributes.
fn with_timestamp(der: &[u8], tsa: &dyn TimestampAuthority) -> Result<Vec<u8>, SigningError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::{SignedData, SignerInfos};
    use der::asn1::SetOfVec;
    let fail = |e: der::Error| SigningError::Cms(e.to_string());
    let info = <ContentInfo as der::Decode>::from_der(der).map_err(fail)?;
    let mut signed: SignedData = info.content.decode_as().map_err(fail)?;
    let mut signers = signed.signer_infos.0.into_vec();
    let signer = signers
        .first_mut()
        .ok_or_else(|| SigningError::Cms("the signature names no signer".into()))?;
    let token = timestamp::obtain(tsa, signer.signature.as_bytes())?;
    let attribute = x509_cert::attr::Attribute {
        oid: timestamp::ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![der::Any::encode_from(&token).map_err(fail)?])
            .map_err(fail)?,
    };
    signer.unsigned_attrs = Some(SetOfVec::try_from(vec![attribute]).map_err(fail)?);
    signed.signer_infos = SignerInfos(SetOfVec::try_from(signers).map_err(fail)?);
    ContentInfo {
        content_type: info.content_type,
        content: der::Any::encode_from(&signed).map_err(fail)?,
    }
    .to_der()
    .map_err(fail)
}

/// The ESS signing-certificate-v2 attribute (RFC 5035): the SHA-256 of the signing
/// certificate, binding it to the signature.
fn signing_certificate_v2(cert: &Certificate) -> Result<x509_cert::attr::Attribute, SigningError> {
    use der::asn1::{OctetString, SetOfVec};
    #[derive(der::Sequence)]
    struct EssCertIdV2 {
        cert_hash: OctetString,
    }
    #[derive(der::Sequence)]
    struct SigningCertificateV2 {
        certs: Vec<EssCertIdV2>,
    }
    let fail = |e: der::Error| SigningError::Cms(e.to_string());
    let hash = Sha256::digest(cert.to_der().map_err(fail)?);
    let value = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: OctetString::new(hash.to_vec()).map_err(fail)?,
        }],
    };
    Ok(x509_cert::attr::Attribute {
        oid: const_oid::db::rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
        values: SetOfVec::try_from(vec![der::Any::encode_from(&value).map_err(fail)?])
            .map_err(fail)?,
    })
}

/// Appends the signature field to `pdf` (incremental update, placeholders for the byte ranges
/// and the contents), fills in the byte ranges, and returns the file with the span of the
/// `/Contents` hex string (angle brackets included).
fn with_signature_field(
    pdf: &[u8],
    date: &str,
    chain: &[Vec<u8>],
) -> Result<(Vec<u8>, std::ops::Range<usize>), SigningError> {
    let bad = |e: lopdf::Error| SigningError::Pdf(e.to_string());
    let previous = lopdf::Document::load_mem(pdf).map_err(bad)?;
    let page_id = *previous
        .get_pages()
        .values()
        .next()
        .ok_or_else(|| SigningError::Pdf("the document has no page".into()))?;
    let catalog_id = previous
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(bad)?;
    let mut doc = IncrementalDocument::create_from(pdf.to_vec(), previous);
    let placeholder_range = BYTE_RANGE_PLACEHOLDER;
    let signature = doc.new_document.add_object(dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => vec![
            Object::Integer(0),
            Object::Integer(9_999_999_999),
            Object::Integer(9_999_999_999),
            Object::Integer(9_999_999_999),
        ],
        "Contents" => Object::String(vec![0u8; SIGNATURE_BYTES], StringFormat::Hexadecimal),
        "M" => Object::string_literal(date),
        "Reason" => Object::string_literal("leaktrace evidence report"),
    });
    let widget = doc.new_document.add_object(dictionary! {
        "Type" => "Annot",
        "Subtype" => "Widget",
        "FT" => "Sig",
        "T" => Object::string_literal("leaktrace-signature"),
        "V" => signature,
        "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
        "F" => 132,
        "P" => page_id,
    });
    doc.opt_clone_object_to_new_document(page_id).map_err(bad)?;
    doc.new_document
        .get_object_mut(page_id)
        .and_then(Object::as_dict_mut)
        .map_err(bad)?
        .set("Annots", vec![Object::Reference(widget)]);
    // The document security store: the certificates that validate the signature.
    let certs: Vec<Object> = chain
        .iter()
        .map(|der| {
            Object::Reference(
                doc.new_document
                    .add_object(lopdf::Stream::new(dictionary! {}, der.clone())),
            )
        })
        .collect();
    doc.opt_clone_object_to_new_document(catalog_id)
        .map_err(bad)?;
    let catalog = doc
        .new_document
        .get_object_mut(catalog_id)
        .and_then(Object::as_dict_mut)
        .map_err(bad)?;
    catalog.set(
        "AcroForm",
        dictionary! { "Fields" => vec![Object::Reference(widget)], "SigFlags" => 3 },
    );
    catalog.set("DSS", dictionary! { "Certs" => certs });
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| SigningError::Pdf(e.to_string()))?;

    let contents_text = format!("<{}>", "00".repeat(SIGNATURE_BYTES));
    let start = find_last(&out, contents_text.as_bytes())
        .ok_or_else(|| SigningError::Pdf("signature placeholder not written".into()))?;
    let end = start + contents_text.len();
    let at = find_last(&out, placeholder_range)
        .ok_or_else(|| SigningError::Pdf("byte range placeholder not written".into()))?;
    let ranges = format!("[0 {start} {end} {}]", out.len() - end);
    if ranges.len() > placeholder_range.len() {
        return Err(SigningError::Pdf("the report is too large to sign".into()));
    }
    let padded = format!("{ranges:<width$}", width = placeholder_range.len());
    out[at..at + placeholder_range.len()].copy_from_slice(padded.as_bytes());
    Ok((out, start..end))
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The certificate among those a CMS signature carries that its signer names.
pub(crate) fn signer_certificate<'a>(
    signed: &'a cms::signed_data::SignedData,
    sid: &SignerIdentifier,
) -> Option<&'a Certificate> {
    signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .find(|c| match sid {
            SignerIdentifier::IssuerAndSerialNumber(id) => {
                c.tbs_certificate.issuer == id.issuer
                    && c.tbs_certificate.serial_number == id.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c
                .tbs_certificate
                .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, own)| own == *ski),
        })
}

/// The DER of every certificate in a PEM text (a certificate and its chain); none when the
/// text holds no readable certificate.
pub fn certificates_der(pem: &str) -> Vec<Vec<u8>> {
    Certificate::load_pem_chain(pem.as_bytes())
        .map(|chain| chain.iter().filter_map(|c| c.to_der().ok()).collect())
        .unwrap_or_default()
}

/// A certificate given as PEM text that must hold exactly one certificate block and nothing
/// else (no text before or after it, no second block): its canonical PEM and the hex SHA-256
/// of its DER, so that the fingerprint shown is that of the certificate checked against.
pub fn single_certificate(pem: &str) -> Result<(String, String), SigningError> {
    let bad = |why: &str| SigningError::Identity(format!("CA certificate: {why}"));
    let text = pem.trim();
    if !text.starts_with("-----BEGIN CERTIFICATE-----")
        || !text.ends_with("-----END CERTIFICATE-----")
        || text.matches("-----BEGIN").count() != 1
    {
        return Err(bad("not exactly one PEM certificate block"));
    }
    let cert = Certificate::from_pem(text).map_err(|e| bad(&e.to_string()))?;
    let der = cert.to_der().map_err(|e| bad(&e.to_string()))?;
    let canonical =
        der::EncodePem::to_pem(&cert, der::pem::LineEnding::LF).map_err(|e| bad(&e.to_string()))?;
    Ok((canonical, hex::encode(Sha256::digest(der))))
}

/// The signing certificate's subject (for display).
pub fn subject(cert_pem: &str) -> Option<String> {
    Certificate::from_pem(cert_pem)
        .ok()
        .map(|c| c.tbs_certificate.subject.to_string())
}

/// What checking a signed report found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The signed byte ranges cover the whole file (nothing was appended after signing).
    pub whole_document: bool,
    /// The signed digest equals the digest of the signed byte ranges.
    pub digest_matches: bool,
    /// The signer's ECDSA signature over the signed attributes verifies.
    pub signature_verifies: bool,
    /// The signing certificate was issued by the given CA (its signature verifies).
    pub issued_by_ca: bool,
    /// The signing certificate's subject.
    pub signer: String,
    /// The signature's RFC 3161 timestamp, when it carries one.
    pub timestamp: Option<Stamp>,
}

impl Checked {
    /// Valid: the whole file is signed, unchanged, by a key whose signature verifies, and
    /// the timestamp, if there is one, stamps this signature and verifies.
    pub fn valid(&self) -> bool {
        self.whole_document
            && self.digest_matches
            && self.signature_verifies
            && self.timestamp.as_ref().is_none_or(Stamp::valid)
    }
}

fn verifying_key(cert: &Certificate) -> Result<p256::ecdsa::VerifyingKey, SigningError> {
    p256::ecdsa::VerifyingKey::from_sec1_bytes(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(|e| SigningError::Unsigned(format!("unsupported signing key: {e}")))
}

/// Checks the (last) PAdES signature of `pdf` against the CA certificate `ca_pem`. An error
/// means there is no readable signature at all.
pub fn check(pdf: &[u8], ca_pem: &str) -> Result<Checked, SigningError> {
    let unsigned = |why: &str| SigningError::Unsigned(why.to_string());
    let at = find_last(pdf, b"/ByteRange").ok_or_else(|| unsigned("no signature in the file"))?;
    let open = pdf[at..]
        .iter()
        .position(|&b| b == b'[')
        .map(|i| at + i)
        .ok_or_else(|| unsigned("malformed /ByteRange"))?;
    let close = pdf[open..]
        .iter()
        .position(|&b| b == b']')
        .map(|i| open + i)
        .ok_or_else(|| unsigned("malformed /ByteRange"))?;
    let numbers: Vec<usize> = std::str::from_utf8(&pdf[open + 1..close])
        .ok()
        .and_then(|t| t.split_whitespace().map(|n| n.parse().ok()).collect())
        .ok_or_else(|| unsigned("malformed /ByteRange"))?;
    let [0, b, c, d] = numbers[..] else {
        return Err(unsigned("malformed /ByteRange"));
    };
    if b >= c || c.checked_add(d).is_none_or(|end| end > pdf.len()) {
        return Err(unsigned("/ByteRange points outside the file"));
    }
    let contents = &pdf[b..c];
    let hex_text = contents
        .strip_prefix(b"<")
        .and_then(|t| t.strip_suffix(b">"))
        .ok_or_else(|| unsigned("malformed /Contents"))?;
    let der_bytes = hex::decode(hex_text).map_err(|_| unsigned("malformed /Contents"))?;
    let digest = {
        let mut h = Sha256::new();
        h.update(&pdf[..b]);
        h.update(&pdf[c..c + d]);
        h.finalize()
    };
    let mut checked = check_cms(&der_bytes, &digest, ca_pem)?;
    checked.whole_document = c + d == pdf.len();
    Ok(checked)
}

/// Checks a detached CMS signature (DER, as [`ReportSigner::sign_detached`] makes) of
/// `content` against the CA certificate `ca_pem`.
pub fn check_detached(
    content: &[u8],
    signature: &[u8],
    ca_pem: &str,
) -> Result<Checked, SigningError> {
    check_cms(signature, &Sha256::digest(content), ca_pem)
}

/// Checks CMS SignedData `der_bytes` (possibly zero-padded) over content whose SHA-256 is
/// `digest`; `whole_document` is left true for the caller to settle.
fn check_cms(der_bytes: &[u8], digest: &[u8], ca_pem: &str) -> Result<Checked, SigningError> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use p256::ecdsa::signature::Verifier;
    let unsigned = |why: &str| SigningError::Unsigned(why.to_string());
    let not_cms = |e: der::Error| SigningError::Unsigned(format!("the signature is not CMS: {e}"));
    let mut reader = der::SliceReader::new(der_bytes).map_err(not_cms)?;
    let info: ContentInfo = der::Decode::decode(&mut reader).map_err(not_cms)?;
    // The signature is padded with zeros to the reserved size; anything else after it is
    // unsigned data smuggled into the file.
    let used = usize::try_from(der::Reader::position(&reader)).map_err(not_cms)?;
    if der_bytes[used.min(der_bytes.len())..]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(unsigned("bytes other than padding follow the signature"));
    }
    let signed: SignedData = info.content.decode_as().map_err(not_cms)?;
    let signer_info = signed
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| unsigned("the signature names no signer"))?;
    let cert = signer_certificate(&signed, &signer_info.sid)
        .ok_or_else(|| unsigned("the signer's certificate is not in the signature"))?;
    let attributes = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| unsigned("the signature has no signed attributes"))?;
    let signed_digest = attributes
        .iter()
        .find(|a| a.oid == const_oid::db::rfc5911::ID_MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok());
    let signature_verifies = match (
        verifying_key(cert),
        attributes.to_der(),
        p256::ecdsa::DerSignature::try_from(signer_info.signature.as_bytes()),
    ) {
        (Ok(key), Ok(signed_attributes), Ok(signature)) => {
            key.verify(&signed_attributes, &signature).is_ok()
        }
        _ => false,
    };
    let ca = Certificate::from_pem(ca_pem)
        .map_err(|e| SigningError::Identity(format!("CA certificate: {e}")))?;
    let issued_by_ca = cert.tbs_certificate.issuer == ca.tbs_certificate.subject
        && match (
            verifying_key(&ca),
            cert.tbs_certificate.to_der(),
            cert.signature
                .as_bytes()
                .map(p256::ecdsa::DerSignature::try_from),
        ) {
            (Ok(key), Ok(tbs), Some(Ok(signature))) => key.verify(&tbs, &signature).is_ok(),
            _ => false,
        };
    let timestamp = match signer_info.unsigned_attrs.as_ref().and_then(|attributes| {
        attributes
            .iter()
            .find(|a| a.oid == timestamp::ID_AA_SIGNATURE_TIME_STAMP_TOKEN)
    }) {
        None => None,
        Some(attribute) => {
            let token = attribute
                .values
                .iter()
                .next()
                .and_then(|v| v.decode_as::<ContentInfo>().ok())
                .ok_or_else(|| unsigned("the signature's timestamp is not a CMS token"))?;
            let stamp = timestamp::check(&token, signer_info.signature.as_bytes())
                .map_err(|e| SigningError::Unsigned(e.to_string()))?;
            Some(stamp)
        }
    };
    Ok(Checked {
        timestamp,
        whole_document: true,
        digest_matches: signed_digest.is_some_and(|s| s.as_bytes() == digest),
        signature_verifies,
        issued_by_ca,
        signer: cert.tbs_certificate.subject.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{render, sample};

    fn report() -> Vec<u8> {
        render(&sample(
            vec![Some(1.0), None, Some(-0.5)],
            vec![true, false, false],
        ))
    }

    /// The four numbers of a signed file's `/ByteRange`.
    fn byte_range(pdf: &[u8]) -> [usize; 4] {
        let at = pdf.windows(10).rposition(|w| w == b"/ByteRange").unwrap();
        let open = at + pdf[at..].iter().position(|&b| b == b'[').unwrap();
        let close = open + pdf[open..].iter().position(|&b| b == b']').unwrap();
        let numbers: Vec<usize> = std::str::from_utf8(&pdf[open + 1..close])
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        numbers.try_into().unwrap()
    }

    #[test]
    fn a_signed_report_checks_and_any_change_is_caught() {
        let id = create_identity("test").unwrap();
        let signer =
            ReportSigner::from_pem(&id.signing_cert_pem, &id.signing_key_pem, &id.ca_cert_pem)
                .unwrap();
        let pdf = report();
        assert!(
            check(&pdf, &id.ca_cert_pem).is_err(),
            "an unsigned file has no signature"
        );
        let signed = signer.sign(&pdf, "D:20261128110000Z", None).unwrap();
        assert!(
            signed.starts_with(&pdf),
            "an incremental update keeps the original bytes"
        );
        let ok = check(&signed, &id.ca_cert_pem).unwrap();
        assert!(ok.valid() && ok.issued_by_ca, "{ok:?}");
        assert!(ok.signer.contains("leaktrace report signing"));

        let mut changed = signed.clone();
        changed[pdf.len() / 2] ^= 1;
        let bad = check(&changed, &id.ca_cert_pem).unwrap();
        assert!(!bad.valid() && !bad.digest_matches);

        // A digit of the signature's zero padding changed: refused, though the signature
        // itself still verifies.
        let mut padded = signed.clone();
        let [_, gap_start, gap_end, _] = byte_range(&padded);
        let end = gap_end - 1;
        assert_eq!(
            (padded[gap_start], padded[end], padded[end - 1]),
            (b'<', b'>', b'0'),
            "the signature's hex string, padded"
        );
        padded[end - 1] = b'1';
        let err = check(&padded, &id.ca_cert_pem).unwrap_err();
        assert!(err.to_string().contains("padding"), "{err}");

        let mut appended = signed.clone();
        appended.extend_from_slice(b"\n% more\n");
        assert!(!check(&appended, &id.ca_cert_pem).unwrap().valid());

        let other = create_identity("other").unwrap();
        let foreign = check(&signed, &other.ca_cert_pem).unwrap();
        assert!(foreign.valid() && !foreign.issued_by_ca);
    }

    fn signer() -> (NewIdentity, ReportSigner) {
        let id = create_identity("test").unwrap();
        let signer =
            ReportSigner::from_pem(&id.signing_cert_pem, &id.signing_key_pem, &id.ca_cert_pem)
                .unwrap();
        (id, signer)
    }

    #[test]
    fn a_detached_signature_checks_its_content_and_its_timestamp() {
        use crate::timestamp::testing::OpenSslTsa;
        let (id, signer) = signer();
        let content = br#"{"files":[]}"#;
        let plain = signer.sign_detached(content, None).unwrap();
        let ok = check_detached(content, &plain, &id.ca_cert_pem).unwrap();
        assert!(
            ok.valid() && ok.issued_by_ca && ok.timestamp.is_none(),
            "{ok:?}"
        );
        let changed = check_detached(br#"{"files":[1]}"#, &plain, &id.ca_cert_pem).unwrap();
        assert!(!changed.valid() && !changed.digest_matches, "{changed:?}");
        let other = create_identity("other").unwrap();
        assert!(
            !check_detached(content, &plain, &other.ca_cert_pem)
                .unwrap()
                .issued_by_ca
        );
        assert!(check_detached(content, b"not cms", &id.ca_cert_pem).is_err());
        let tsa = OpenSslTsa::new(false).unwrap();
        let stamped = signer.sign_detached(content, Some(&tsa)).unwrap();
        let ok = check_detached(content, &stamped, &id.ca_cert_pem).unwrap();
        assert!(
            ok.valid() && ok.timestamp.as_ref().is_some_and(Stamp::valid),
            "{ok:?}"
        );
    }

    #[test]
    fn a_report_carries_its_certificate_chain_in_a_document_security_store() {
        let (id, signer) = signer();
        let signed = signer.sign(&report(), "D:20261128110000Z", None).unwrap();
        let doc = lopdf::Document::load_mem(&signed).unwrap();
        let dss = doc
            .catalog()
            .unwrap()
            .get(b"DSS")
            .and_then(Object::as_dict)
            .unwrap();
        let certs: Vec<Vec<u8>> = dss
            .get(b"Certs")
            .and_then(Object::as_array)
            .unwrap()
            .iter()
            .map(|r| {
                let stream = doc
                    .get_object(r.as_reference().unwrap())
                    .and_then(Object::as_stream)
                    .unwrap();
                stream.content.clone()
            })
            .collect();
        let der_of = |pem: &str| Certificate::from_pem(pem).unwrap().to_der().unwrap();
        assert_eq!(
            certs,
            [der_of(&id.signing_cert_pem), der_of(&id.ca_cert_pem)],
            "the signing certificate and its CA"
        );
        let checked = check(&signed, &id.ca_cert_pem).unwrap();
        assert!(
            checked.valid() && checked.timestamp.is_none(),
            "{checked:?}"
        );
    }

    #[test]
    fn a_timestamped_signature_checks_with_ec_and_rsa_authorities() {
        use crate::timestamp::testing::OpenSslTsa;
        use crate::timestamp::TimestampAuthority;
        let (id, signer) = signer();
        for rsa in [false, true] {
            let tsa = OpenSslTsa::new(rsa).unwrap();
            let signed = signer
                .sign(&report(), "D:20261128110000Z", Some(&tsa))
                .unwrap();
            let checked = check(&signed, &id.ca_cert_pem).unwrap();
            assert!(checked.valid() && checked.issued_by_ca, "{checked:?}");
            let stamp = checked.timestamp.expect("a timestamp");
            assert!(
                stamp.valid() && stamp.time_stamping_certificate,
                "{stamp:?}"
            );
            assert!(stamp.trusted_by(&tsa.anchors()));
            let other = OpenSslTsa::new(false).unwrap();
            assert!(!stamp.trusted_by(&other.anchors()));
            assert!(stamp.authority.contains("Test TSA"), "{stamp:?}");
            let tsa_der = Certificate::from_pem(tsa.certificate_pem())
                .unwrap()
                .to_der()
                .unwrap();
            assert_eq!(stamp.authority_sha256, hex::encode(Sha256::digest(tsa_der)));
            // The TSA's time is today's (the clock of this machine, within a day).
            let today = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let stamped = stamp
                .time
                .parse::<der::DateTime>()
                .map(|t| t.unix_duration().as_secs())
                .unwrap();
            assert!(
                today.abs_diff(stamped) < 86_400,
                "{} vs {today}",
                stamp.time
            );

            // The stamp is of this signature: the same token under another signature value
            // does not match it.
            let (info, _) = signed_data_of(&signed);
            let token = info
                .signer_infos
                .0
                .iter()
                .next()
                .unwrap()
                .unsigned_attrs
                .clone();
            let token = token
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .values
                .iter()
                .next()
                .unwrap()
                .decode_as::<cms::content_info::ContentInfo>()
                .unwrap();
            let other = crate::timestamp::check(&token, b"another signature").unwrap();
            assert!(
                other.signature_verifies && !other.imprint_matches,
                "{other:?}"
            );
        }
    }

    /// The CMS SignedData of a signed file's (last) signature.
    fn signed_data_of(pdf: &[u8]) -> (cms::signed_data::SignedData, usize) {
        let [_, b, c, _] = byte_range(pdf);
        let der = hex::decode(&pdf[b + 1..c - 1]).unwrap();
        let mut reader = der::SliceReader::new(&der).unwrap();
        let info: cms::content_info::ContentInfo = der::Decode::decode(&mut reader).unwrap();
        let used = der::Reader::position(&reader);
        (
            info.content.decode_as().unwrap(),
            usize::try_from(used).unwrap(),
        )
    }

    #[test]
    fn a_timestamp_authority_that_fails_or_answers_another_request_gives_no_report() {
        use crate::timestamp::{self, testing::OpenSslTsa, TimestampAuthority};
        struct Broken;
        impl TimestampAuthority for Broken {
            fn exchange(&self, _: &[u8]) -> Result<Vec<u8>, String> {
                Ok(b"<html>502 Bad Gateway</html>".to_vec())
            }

            fn anchors(&self) -> Vec<Vec<u8>> {
                Vec::new()
            }
        }
        let (_, signer) = signer();
        let err = signer
            .sign(&report(), "D:20261128110000Z", Some(&Broken))
            .unwrap_err();
        assert_eq!(err.code(), "timestamp_unavailable", "{err}");

        // A genuine authority that is not the one configured (its tokens verify on their
        // own, but its certificate is not the anchor) gives no report either.
        struct Impostor(OpenSslTsa, OpenSslTsa);
        impl TimestampAuthority for Impostor {
            fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, String> {
                self.0.exchange(request)
            }
            fn anchors(&self) -> Vec<Vec<u8>> {
                self.1.anchors()
            }
        }
        let impostor = Impostor(
            OpenSslTsa::new(false).unwrap(),
            OpenSslTsa::new(false).unwrap(),
        );
        let err = signer
            .sign(&report(), "D:20261128110000Z", Some(&impostor))
            .unwrap_err();
        assert!(
            err.to_string().contains("not the configured authority"),
            "{err}"
        );

        // An answer to another request (a replayed token) is refused by its nonce.
        let tsa = OpenSslTsa::new(false).unwrap();
        let first = timestamp::request(b"signature").unwrap();
        let second = timestamp::request(b"signature").unwrap();
        let answer = tsa.exchange(&first.der).unwrap();
        assert!(timestamp::token_from_response(&answer, &first).is_ok());
        let err = timestamp::token_from_response(&answer, &second).unwrap_err();
        assert!(err.to_string().contains("nonce"), "{err}");
    }
}
