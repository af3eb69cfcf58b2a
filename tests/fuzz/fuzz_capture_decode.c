/*
 * fuzz_capture_decode.c — libFuzzer target for the capture's packet decoder
 * (agent/capture/decode.h): every frame the wire can bring.
 *
 * The first byte picks the link type (Ethernet, Linux cooked v1 and v2, raw IP) and the
 * next two how many bytes the frame had on the wire beyond those captured (0 = the capture
 * is the whole frame); the rest is the captured frame, copied into a buffer of exactly its
 * size so a read past it trips AddressSanitizer. Beyond "no crash", it checks what the
 * header promises: a known reason, a transport header only over an IP header, no ports
 * for a later fragment, the IP length within the wire length, the tag and extension header
 * counts within their bounds, and a complete decode (KVL_DEC_OK) reached only when every
 * layer it reports was read from captured bytes. A broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    static const kvl_link_t links[] = {KVL_LINK_EN10MB, KVL_LINK_LINUX_SLL, KVL_LINK_LINUX_SLL2,
                                       KVL_LINK_RAW};
    kvl_link_t link = links[data[0] % 4];
    size_t extra = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    uint8_t *frame = malloc(size > 0 ? size : 1);
    CHECK(frame != NULL);
    if (size > 0) {
        memcpy(frame, data, size);
    }
    kvl_pkt_t p;
    kvl_dec_reason_t r = kvl_decode(link, frame, size, size + extra, &p);
    CHECK((unsigned)r < KVL_DEC__COUNT);
    CHECK(strcmp(kvl_dec_reason_name(r), "?") != 0);
    CHECK(p.wire == size + extra);
    CHECK(!p.have_l4 || p.have_ip);
    CHECK(!(p.later_fragment && p.have_l4));
    CHECK(!(p.later_fragment && p.first_fragment));
    CHECK(p.ip_len <= p.wire);
    CHECK(p.payload_len <= p.ip_len);
    CHECK(p.tags <= KVL_DEC_MAX_TAGS && p.ext <= KVL_DEC_MAX_EXT);
    CHECK(!p.have_ip || p.ip_ver == 4 || p.ip_ver == 6);
    /* The IP header pointer stays inside the captured frame, and so does its length. */
    if (p.l3 != NULL) {
        CHECK(p.have_ip && p.l3 >= frame && p.l3 < frame + size);
        CHECK(p.l3_cap <= (size_t)(frame + size - p.l3) && p.l3_cap <= p.ip_len);
    }
    if (extra == 0) {
        /* The whole frame was captured: nothing can have been cut by the snap length. */
        CHECK(r != KVL_DEC_SNAPPED);
    }
    if (r == KVL_DEC_NOT_IP) {
        CHECK(!p.have_ip);
    }
    /* Deterministic: the same frame decodes the same way. */
    kvl_pkt_t again;
    CHECK(kvl_decode(link, frame, size, size + extra, &again) == r);
    CHECK(memcmp(&p, &again, sizeof(p)) == 0);
    free(frame);
    return 0;
}
