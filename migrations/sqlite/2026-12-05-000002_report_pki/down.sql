DROP TABLE report_pki;
