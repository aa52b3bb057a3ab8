# The small test guests: freestanding PVH ELF images built with their own compiler flags, because
# the host flags (sanitizers, -fpie defaults, build-type optimisation) do not apply to a guest.
# Each NAME below becomes ${CMAKE_BINARY_DIR}/tests/guests/NAME.elf.

find_program(GUEST_CC NAMES gcc REQUIRED)

set(GUEST_CFLAGS -std=gnu11 -O2 -m64 -ffreestanding -fno-pic -fno-pie -fno-stack-protector
    -fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -mno-red-zone
    -mgeneral-regs-only -mcmodel=small -fno-strict-aliasing -g
    -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wno-unused-parameter)
set(GUEST_LDFLAGS -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,noexecstack
    -Wl,-z,max-page-size=4096 -Wl,-T,${CMAKE_CURRENT_SOURCE_DIR}/guest.ld)
set(GUEST_HEADERS ${CMAKE_CURRENT_SOURCE_DIR}/guest.h)
set(GUEST_OBJ_DIR ${CMAKE_CURRENT_BINARY_DIR}/obj)
file(MAKE_DIRECTORY ${GUEST_OBJ_DIR})

# guest_object(OUT_VAR SOURCE OBJECT_NAME [EXTRA_FLAGS...]): compile one guest source file.
function(guest_object out_var src obj_name)
  set(obj ${GUEST_OBJ_DIR}/${obj_name}.o)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${GUEST_CC} ${GUEST_CFLAGS} ${ARGN} -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src} ${GUEST_HEADERS}
    COMMENT "Building guest object ${obj_name}.o"
    VERBATIM)
  set(${out_var} ${obj} PARENT_SCOPE)
endfunction()

# guest_image(NAME SOURCE [EXTRA_FLAGS...]): link NAME.elf from SOURCE and the shared boot code.
# Each image compiles its own copy of the shared objects: with custom commands, objects
# shared by several targets are rebuilt by each of them, and a parallel build then links
# one image while another target is still rewriting the object.
function(guest_image name src)
  guest_object(main_obj ${src} ${name} ${ARGN})
  guest_object(boot_obj boot.S ${name}-boot)
  guest_object(kernel_obj kernel.c ${name}-kernel)
  guest_object(lib_obj lib.c ${name}-lib)
  set(common_objs ${boot_obj} ${kernel_obj} ${lib_obj})
  set(elf ${CMAKE_CURRENT_BINARY_DIR}/${name}.elf)
  add_custom_command(OUTPUT ${elf}
    COMMAND ${GUEST_CC} ${GUEST_LDFLAGS} -o ${elf} ${common_objs} ${main_obj} -lgcc
    DEPENDS ${common_objs} ${main_obj} ${CMAKE_CURRENT_SOURCE_DIR}/guest.ld
    COMMENT "Linking guest image ${name}.elf"
    VERBATIM)
  add_custom_target(guest-${name} ALL DEPENDS ${elf})
  set_property(GLOBAL APPEND PROPERTY CRYO_GUEST_IMAGES ${name})
endfunction()

guest_image(hello hello.c)
guest_image(counter counter.c)
guest_image(counter-smp counter.c -DCOUNTER_CPUS=2)
guest_image(memtouch memtouch.c)
guest_image(irqtest irqtest.c)

add_custom_target(guests)
get_property(guest_names GLOBAL PROPERTY CRYO_GUEST_IMAGES)
foreach(name ${guest_names})
  add_dependencies(guests guest-${name})
endforeach()

# Boot tests under QEMU TCG: they need no /dev/kvm, only qemu-system-x86_64 (label "qemu").
find_program(GUEST_QEMU NAMES qemu-system-x86_64)
if(GUEST_QEMU)
  enable_testing()
  set(run ${CMAKE_CURRENT_SOURCE_DIR}/run-qemu.sh)
  set(expected ${CMAKE_CURRENT_SOURCE_DIR}/expected)
  set(bin ${CMAKE_CURRENT_BINARY_DIR})
  foreach(name hello counter counter-smp irqtest)
    add_test(NAME guests/qemu-${name} COMMAND ${run} ${bin}/${name}.elf ${expected}/${name}.txt)
  endforeach()
  # The page count depends on the memory map that QEMU (7.2, q35, 256 MiB) gives the guest.
  add_test(NAME guests/qemu-memtouch COMMAND ${run} ${bin}/memtouch.elf ${expected}/memtouch.txt
           --send-after touched q -- -accel tcg -M q35 -m 256 -smp 1 -append "touch=50 dirty=2000")
  set_tests_properties(guests/qemu-hello guests/qemu-counter guests/qemu-counter-smp
                       guests/qemu-irqtest guests/qemu-memtouch PROPERTIES LABELS qemu TIMEOUT 180)
endif()
