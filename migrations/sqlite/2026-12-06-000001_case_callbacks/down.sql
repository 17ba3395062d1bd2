DROP TABLE case_callbacks;
