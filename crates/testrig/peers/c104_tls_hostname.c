/* Loaded into a c104 2.2.1 TLS *client* before c104 itself (see c104_tls.py).
 *
 * The c104 wheel bundles mbedtls >= 3.6.3, which refuses to verify a server certificate
 * unless the client called mbedtls_ssl_set_hostname() (MBEDTLS_ERR_SSL_CERTIFICATE_
 * VERIFICATION_WITHOUT_HOSTNAME, -0x5d80); lib60870 never does, so every c104 TLS client
 * fails its handshake. This wrapper of mbedtls_ssl_setup() calls the real one (looked up in
 * c104's own module) and then mbedtls_ssl_set_hostname(ssl, NULL), the documented way to say
 * "no host name check" (IEC 62351-3 authenticates by chain, time and allow-list, which
 * lib60870 still checks). Everything else is c104's own TLS. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <string.h>

struct mbedtls_ssl_context;
struct mbedtls_ssl_config;

static int find_c104(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name != NULL && strstr(info->dlpi_name, "/_c104.") != NULL) {
        *(void **)data = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
        return 1;
    }
    return 0;
}

int mbedtls_ssl_setup(struct mbedtls_ssl_context *ssl, const struct mbedtls_ssl_config *conf)
{
    void *c104 = NULL;
    dl_iterate_phdr(find_c104, &c104);
    if (c104 == NULL)
        return -0x7100;
    int (*real)(struct mbedtls_ssl_context *, const struct mbedtls_ssl_config *) =
        (int (*)(struct mbedtls_ssl_context *, const struct mbedtls_ssl_config *))dlsym(c104, "mbedtls_ssl_setup");
    int (*set_hostname)(struct mbedtls_ssl_context *, const char *) =
        (int (*)(struct mbedtls_ssl_context *, const char *))dlsym(c104, "mbedtls_ssl_set_hostname");
    dlclose(c104);
    if (real == NULL || set_hostname == NULL)
        return -0x7100;
    int r = real(ssl, conf);
    if (r == 0)
        r = set_hostname(ssl, NULL);
    return r;
}
