// Throwaway keys made for these tests (openssl genrsa / ecparam); only public halves are kept.
const TEST_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwRw/xGRemVGJMGsXduCz\nCPimr9La1Lnx3dinFZ6eYA4Kgi4c5IA++YYKFlT/nG+wj+PFEeMQcYXzx+qjl2jv\nEKCBe7BAvawUzpjYRjnhRIxjTWI4ngtSk9KdQ6gybbRMJXeEMeiDIe3D+wOUR4nd\nx66RI/I71n0EGFdMTIiLIrxwT5EqjQDuFe2Rv5zXPYSheuAbA0pph6Y+G3pIpplM\nEZMpTQ+i3ZaXlKS4GQrb12P/z9GsLov8qj8kgsrzrjFOSFLA+ej9xhwfZI8wWbwN\nb4kTuAwpEEKSvy1m6G9WTVIwvQQMtYONaRx9W2ubW3p42rJcYFfRuTI/3cnAxCA4\nmwIDAQAB\n-----END PUBLIC KEY-----";
const TEST_PKCS1_PUB: &str = "-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEAwRw/xGRemVGJMGsXduCzCPimr9La1Lnx3dinFZ6eYA4Kgi4c5IA+\n+YYKFlT/nG+wj+PFEeMQcYXzx+qjl2jvEKCBe7BAvawUzpjYRjnhRIxjTWI4ngtS\nk9KdQ6gybbRMJXeEMeiDIe3D+wOUR4ndx66RI/I71n0EGFdMTIiLIrxwT5EqjQDu\nFe2Rv5zXPYSheuAbA0pph6Y+G3pIpplMEZMpTQ+i3ZaXlKS4GQrb12P/z9GsLov8\nqj8kgsrzrjFOSFLA+ej9xhwfZI8wWbwNb4kTuAwpEEKSvy1m6G9WTVIwvQQMtYON\naRx9W2ubW3p42rJcYFfRuTI/3cnAxCA4mwIDAQAB\n-----END RSA PUBLIC KEY-----";
const OTHER_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAmMwygQtJSzfsbXhlSo3Z\nyA7mXgRnnLrIxBNZK/YgHHPtkql5bfVa5t9OJiwApcUSN/71K5mMyPnvh+K/fljC\ntQ1aXp9bhjUmfdP0aZ8A2Vb4miZFKK2M2UCORrHPFbn7AukrvuCFq+Az+6/vKopk\nDDxihr2RlYtMkGu9c4CEKiYwKqTNoRbxRiLuxos9v6Iib6tWglZgXMSa3Dhiar5B\nQ69sLdhGG/kb/5GuaS7F5CHJkrePQcRVaVSjKlyYcBBU6Bdo90/mvlGSTI1E0oEn\n+ta59b6mtIfzvW7HZzhKsajzFnoRk83KKAXs6XbYAqPfSwKOK9LV+BtQXMSZio3a\nlwIDAQAB\n-----END PUBLIC KEY-----";
const SMALL_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDBko5650MDXINuKp9tjbQQUSpk\nVUKHLzGEqFSDp/UuFT1eyeM8wLwCHk/x6eMTBWrfXqwqa7vBt06g1qzWzCFh1q2n\nIGfEM9oxF97skVqsB29AjA2d8U7+IFiYYteLFxxskEfK09qPfl3Vtr59LPENZqwz\nbuHvX+fpauiGpJIILQIDAQAB\n-----END PUBLIC KEY-----";
const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEg5PhuDhLGLPVCkS0dYA2r+810Gen\nRD0Si92hnlmn5E4APud8XfidNUQGmhm9n6/nhj4LJ5xQGuf6mCgWqaNIsA==\n-----END PUBLIC KEY-----";

// Requests the `oci` Python SDK 2.189.0 sent, signed with the test key, verbatim.
const PUT_MESSAGES: Vector = Vector {
        method: "POST",
        target: "/20210201/queues/ocid1.queue.oc1..aaaasig/messages",
        headers: &[
        ("user-agent", "Oracle-PythonSDK/2.189.0 (python 3.11.7; x86_64-Linux)"),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("opc-client-info", "Oracle-PythonSDK/2.189.0"),
        ("opc-request-id", "BB3208864AC14CF29CC37FFC100D14DD"),
        ("content-length", "107"),
        ("date", "Thu, 03 Dec 2026 08:38:25 GMT"),
        ("host", "127.0.0.1:45225"),
        ("x-content-sha256", "oT8JIHeZB/1crKRRRPk0FB5gIMAMs1B6Rp1qrsPzXXw="),
        ("authorization", "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"ocid1.tenancy.oc1..aaaalocaltenancy/ocid1.user.oc1..aaaalocaluser/11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\",signature=\"PBipb8GO+riEo0VadncZ1QQhaNm2h4lezvapEahlUkLUQZarEjusjWYAYu6U7u0EV8HrN6wI5Id0Tx0BjVIViT1i8iDldAwSJTMPKZ2S0A2WaNGIEnZGVBAYVd5nBbVu096LhnNB7/aF3XrFrUrF/CZg+O8YaA3GpHCCU8c/O0ICeJag4QIar0A6bJWeGFM/TuXxK5SG+NcDagB7GS3GZwk2KT8L/gtneLMMy8al4N4gSSX64azMuFyzFkZbDMHI3z6xUFQiceK4IVL1O20L8NFjQE6EjZuHQXxbQ35O7SsDSJIH5p7myL2eeRyOcbL8uuGTy7o+cReoVzc4hdzGAg==\",version=\"1\""),
        ],
        body: "{\"messages\": [{\"content\": \"h\\u00e9llo\", \"metadata\": {\"channelId\": \"ch1\", \"customProperties\": {\"k\": \"v\"}}}]}",
    };

const GET_MESSAGES: Vector = Vector {
        method: "GET",
        target: "/20210201/queues/ocid1.queue.oc1..aaaasig/messages?visibilityInSeconds=30&timeoutInSeconds=20&limit=10&channelFilter=ch%2A",
        headers: &[
        ("user-agent", "Oracle-PythonSDK/2.189.0 (python 3.11.7; x86_64-Linux)"),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("opc-client-info", "Oracle-PythonSDK/2.189.0"),
        ("opc-request-id", "84C32D730DAE40CB9D87B6EF9545936C"),
        ("date", "Thu, 03 Dec 2026 08:38:25 GMT"),
        ("host", "127.0.0.1:45225"),
        ("authorization", "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"ocid1.tenancy.oc1..aaaalocaltenancy/ocid1.user.oc1..aaaalocaluser/11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\",signature=\"gP1/KPtSIAlzlkRaS58qpKxIS5QbACEifF4bUBAqyTYgnB+rzkiqP3yOZEX4LflOFBwH6kr+DiaGMTODPacalH0OuI+tjWRNYRY+rU9OERN1FMVqnmF+ggUK87K1mUdZa2wciB8tIqneBjLqhkBvfjn5p8k5jGG2ZZyaPq2roosEy33Yt8YyYROGWZNLBbZuojczXcH3wfM20H/tPQAxjFDuOJnrOwGX6E/Vxur7ygTkLkzj0914n+VA4ePxUrDLg1ZyTxlWex8WekipgT8UDFqymyvNpuaJnJEa201vs0rnJRTkZdGZRkzyLmR6lljlrf/o/ILhk5k7VBgWyfiusQ==\",version=\"1\""),
        ],
        body: "",
    };

const UPDATE_MESSAGE: Vector = Vector {
        method: "PUT",
        target: "/20210201/queues/ocid1.queue.oc1..aaaasig/messages/1-2-1",
        headers: &[
        ("user-agent", "Oracle-PythonSDK/2.189.0 (python 3.11.7; x86_64-Linux)"),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("opc-client-info", "Oracle-PythonSDK/2.189.0"),
        ("opc-request-id", "D650A030F2E948D0B057B5834D67D522"),
        ("content-length", "27"),
        ("date", "Thu, 03 Dec 2026 08:38:25 GMT"),
        ("host", "127.0.0.1:45225"),
        ("x-content-sha256", "+uVWdwZnNsYGAOyqmW4lupJORYQa26U0wq+GmTxrfyU="),
        ("authorization", "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"ocid1.tenancy.oc1..aaaalocaltenancy/ocid1.user.oc1..aaaalocaluser/11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\",signature=\"Nh+XxwN31l75Wot+xtfOx0OkUeyuarcQ0up0PdGIcOZ6tEstFJ3Ff1EUIsqBsuP5Lo+Jy7t2NKK747WSRLLHYu+KEooSSohOMbHrnB15b+Jwh6drBF7rF2Y8bJj0OTPbxcLLKLWuqBuJkWU0H53w2pIKWl7k1Qh2IPCxriM7PnC4eyPdb9DPl5NNBxNIPpz/ZdrArBUyCyxmJpVRo42uyoY/SHR2E95LhVmLgAR+tTkZjCOWptz31pPqOQpi6GjxOb3m7miOR68NOMooPT1pa00/OVHS3r65x74YQ3FFadey1utxKw92FcHdVMSFL7Q83e0hiHDvHbM3Gso74KPfDg==\",version=\"1\""),
        ],
        body: "{\"visibilityInSeconds\": 60}",
    };

const DELETE_MESSAGE: Vector = Vector {
        method: "DELETE",
        target: "/20210201/queues/ocid1.queue.oc1..aaaasig/messages/1-2-1",
        headers: &[
        ("user-agent", "Oracle-PythonSDK/2.189.0 (python 3.11.7; x86_64-Linux)"),
        ("accept-encoding", "gzip, deflate"),
        ("accept", "application/json"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("opc-client-info", "Oracle-PythonSDK/2.189.0"),
        ("opc-request-id", "942F576359554531BC3667C57B7E8C13"),
        ("content-length", "0"),
        ("date", "Thu, 03 Dec 2026 08:38:25 GMT"),
        ("host", "127.0.0.1:45225"),
        ("authorization", "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"ocid1.tenancy.oc1..aaaalocaltenancy/ocid1.user.oc1..aaaalocaluser/11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff\",signature=\"DvEb2W1Srs2olGHWXotJh9K5WC6G0icSVKUuqYHHfbY4gxZRtjF3R2fIKRJZFzHQboriuvElFhb2ZqlQyQw9VLFSb2IS8wLUhVq0g1PRhA+X8OCPVZRCx+K2VyY08297DvFvtue5RuUg1SjXOIKaTMHtvTSQutNcqSwFuFGdZO9uGAmhcgX46eRqHWByLLR5eJMobxddN7WFU6k/wVedyrAX8p8OGdxz8Dw4yGwCjpDgCS+4nf+zP4GApZBkBYQK0D13daFX/TuFZKgDrcMZGsTkX4ZL0hNLle/G4LzrwdjbQgXAP6axu1l5MZqsm2Pbi5Q0+alitRzXIGMm5MrUJw==\",version=\"1\""),
        ],
        body: "",
    };
