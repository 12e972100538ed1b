/* fuzz_image.c: image_decode() of PNG/JPEG bytes from a client upload, then
 * image_to_input() of whatever decoded to the two model input shapes the
 * daemon serves (1x28x28 and 3x32x32) and image_normalize(). The pixel
 * limit is small (1 Mpixel) so a forged header cannot make one input spend
 * seconds; image_probe() runs on the same bytes and must agree with the
 * decoder on the size of anything that decodes. */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

#define FUZZ_MAX_PIXELS ((uint64_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    image img = { 0 };
    image_header hdr;
    static uint8_t grey[28 * 28], rgb[3 * 32 * 32];
    static nn_real x[3 * 32 * 32];
    static const float mean[3] = { 0.5f, 0.25f, 0.125f };

    if (size > 1 << 20)
        return 0;
    (void)image_detect(data, size);
    int probed = image_probe(&hdr, data, size, err, sizeof err) == IMAGE_OK;
    if (image_decode(&img, data, size, FUZZ_MAX_PIXELS, err, sizeof err) != IMAGE_OK)
        return 0;
    if (img.w < 1 || img.h < 1 || img.c < 1 || img.c > 4 || img.px == NULL)
        abort();
    if (probed && (hdr.w != img.w || hdr.h != img.h))
        abort();
    if (image_to_input(grey, 1, 28, 28, &img, err, sizeof err) == IMAGE_OK)
        image_normalize(x, grey, 1, 28, 28, mean);
    if (image_to_input(rgb, 3, 32, 32, &img, err, sizeof err) == IMAGE_OK)
        image_normalize(x, rgb, 3, 32, 32, NULL);
    image_free(&img);
    image_free(&img);
    return 0;
}
