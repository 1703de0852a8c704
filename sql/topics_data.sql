-- webhook_emitter: the 36 topics (names, display names, envelope resource/action, sample bodies).
-- sample_body is the full body as delivered (BrainCert: with envelope; AOM: flat); used by "Send Test".
-- live_class.updated, assignment.evaluated, assignment.rejected and payment.pending have no
-- documented example; their sample bodies show the derived shapes described in docs/lms.md.

INSERT INTO webhook.topics (topic, display_name, description, source, resource, action, sample_body) VALUES
('user.created', 'User Created', 'Fires when a user is inserted.', 'braincert', 'user', 'signup',
$json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "signup",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "name": "John Doe",
    "user_id": 789012,
    "email": "john.doe@example.com",
    "date_added": "2024-02-14T10:30:00.000Z",
    "avatar_url": null,
    "custom_registration_fields": [
      {
        "field_id": "school",
        "field_name": "School",
        "field_value": "University of BrainCert"
      },
      {
        "field_id": "major",
        "field_name": "Major",
        "field_value": "Computer Science"
      }
    ],
    "groups": [
      {
        "group_id": "101",
        "group_name": "Web Development Enthusiasts"
      },
      {
        "group_id": "102",
        "group_name": "Advanced Mathematics"
      }
    ],
    "roles": [
      {
        "role_id": "1",
        "role_name": "Student"
      },
      {
        "role_id": "2",
        "role_name": "Course Contributor"
      }
    ]
  }
}$json$),
('group.created', 'Group Created', 'Fires when a group is inserted.', 'braincert', 'group', 'created',
$json${
  "id": "03HK59P9478904RFVETKD4ZXXM",
  "resource": "group",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T15:45:00.000Z",
  "timestamp": 1707925500,
  "payload": {
    "group_id": 304050,
    "group_name": "Webhooks Enthusiasts",
    "description": "A group for individuals passionate about learning and sharing knowledge on webhooks and their applications in modern web development."
  }
}$json$),
('course.created', 'Course Created', 'Fires when a course is inserted.', 'braincert', 'course', 'created',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$),
('bundle.created', 'Course Bundle Created', 'Fires when a bundle is inserted.', 'braincert', 'bundle', 'created',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$),
('test.created', 'Test Created', 'Fires when a test (assessment) is inserted.', 'braincert', 'assessment', 'created',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$),
('live_class.created', 'Live Class Created', 'Fires when a live class is inserted.', 'braincert', 'virtual classroom', 'created',
$json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$),
('user.updated', 'User Updated', 'Fires when a user row really changes.', 'braincert', 'user', 'updated',
$json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2022-05-11T01:20:54.000Z",
  "timestamp": 1652232054,
  "payload": {
    "id": 2017237,
    "first_name": "John",
    "last_name": "Doe",
    "email": "john.doe@example.com",
    "roles": [
      {
        "role_id": "3",
        "role_name": "Instructor"
      }
    ],
    "custom_registration_fields": [
      {
        "field_id": "location",
        "field_name": "Location",
        "field_value": "New York"
      },
      {
        "field_id": "department",
        "field_name": "Department",
        "field_value": "Engineering"
      }
    ],
    "groups": [
      {
        "group_id": "201",
        "group_name": "Software Engineering Masters"
      },
      {
        "group_id": "202",
        "group_name": "Project Management"
      }
    ]
  }
}$json$),
('course.updated', 'Course Updated', 'Fires when a course really changes.', 'braincert', 'course', 'updated',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$),
('bundle.updated', 'Course Bundle Updated', 'Fires when a bundle really changes.', 'braincert', 'bundle', 'updated',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$),
('test.updated', 'Test Updated', 'Fires when a test really changes.', 'braincert', 'assessment', 'updated',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$),
('live_class.updated', 'Live Class Updated', 'Fires when a live class really changes.', 'braincert', 'virtual classroom', 'updated',
$json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "updated",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$),
('product.created', 'Product Created', 'Fires when a product is inserted.', 'braincert', 'product', 'created',
$json${
  "id": "20240301191956020665300",
  "resource": "product",
  "action": "created",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-01T15:19:01.924Z",
  "timestamp": 1709306341,
  "payload": {
    "product_type": "Physical product",
    "name": "Course Growing Star",
    "excerpt": "A plush star for every course graduate.",
    "slug": "https://entelyst.braincert.com/product/course-growing-star",
    "price": "49.99",
    "discount": "5.00",
    "description": "Soft plush star (20 cm) embroidered with your academy logo; ships in 3 business days.",
    "shipping_option": "Both",
    "shipping_charge": "4.50",
    "weight": "1.2 lb",
    "banner": "https://entelyst.braincert.com/media/products/course-growing-star.png",
    "sku": "CGS-0001",
    "track_stock": true,
    "items_in_stock": 0,
    "id": 42
  }
}$json$),
('user.deleted', 'User Deleted', 'Fires when a user is deleted.', 'braincert', 'user', 'deleted',
$json${
  "id": "20240214103000123456789",
  "resource": "user",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2022-05-11T01:20:54.000Z",
  "timestamp": 1652232054,
  "payload": {
    "id": 2017237,
    "first_name": "John",
    "last_name": "Doe",
    "email": "john.doe@example.com",
    "roles": [
      {
        "role_id": "3",
        "role_name": "Instructor"
      }
    ],
    "custom_registration_fields": [
      {
        "field_id": "location",
        "field_name": "Location",
        "field_value": "New York"
      },
      {
        "field_id": "department",
        "field_name": "Department",
        "field_value": "Engineering"
      }
    ],
    "groups": [
      {
        "group_id": "201",
        "group_name": "Software Engineering Masters"
      },
      {
        "group_id": "202",
        "group_name": "Project Management"
      }
    ]
  }
}$json$),
('course.deleted', 'Course Deleted', 'Fires when a course is deleted.', 'braincert', 'course', 'deleted',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "course",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Introduction to Webhooks",
    "slug": "introduction-to-webhooks",
    "subtitle": "The Power of Real-Time Integrations",
    "description": "A comprehensive guide to understanding and implementing webhooks. Learn through hands-on examples and real-world scenarios.",
    "course_card_image_url": "/assets/images/intro-to-webhooks.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "instructors": [
      {
        "id": 890789,
        "first_name": "Alex",
        "last_name": "Smith",
        "bio": "Senior Developer and Educator"
      },
      {
        "id": 890790,
        "first_name": "Jamie",
        "last_name": "Doe",
        "bio": "Expert in Webhook Integrations"
      }
    ]
  }
}$json$),
('bundle.deleted', 'Course Bundle Deleted', 'Fires when a bundle is deleted.', 'braincert', 'bundle', 'deleted',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "bundle",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Webhooks Mastery Bundle",
    "slug": "webhooks-mastery-bundle",
    "description": "This bundle includes a comprehensive set of courses to master webhooks, from basic concepts to advanced implementations.",
    "bundle_card_image_url": "/assets/images/webhooks-mastery-bundle.png",
    "created_at": "2024-02-14T21:52:13.530Z",
    "payment_type": "paid",
    "courses": [
      {
        "course_id": 101,
        "course_name": "Introduction to Webhooks",
        "instructors": [
          {
            "id": 890789,
            "first_name": "Alex",
            "last_name": "Smith",
            "bio": "Senior Developer and Educator"
          }
        ]
      },
      {
        "course_id": 102,
        "course_name": "Advanced Webhooks in Practice",
        "instructors": [
          {
            "id": 890790,
            "first_name": "Jamie",
            "last_name": "Doe",
            "bio": "Expert in Webhook Integrations"
          }
        ]
      }
    ]
  }
}$json$),
('test.deleted', 'Test Deleted', 'Fires when a test is deleted.', 'braincert', 'assessment', 'deleted',
$json${
  "id": "01EJ79N9456763TEVEAKD2YWWC",
  "resource": "assessment",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:52:13.000Z",
  "timestamp": 1707947533,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Assessment",
    "slug": "advanced-webhooks-assessment",
    "description": "Test your knowledge and application skills on webhooks with this comprehensive assessment.",
    "tes_card_image_url": "/assets/images/intro-to-webhooks.png",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "payment_type": "paid",
    "created_at": "2024-02-14T21:52:13.530Z",
    "instructor": {
      "id": 890789,
      "first_name": "Alex",
      "last_name": "Smith",
      "bio": "Senior Developer and Educator"
    }
  }
}$json$),
('live_class.deleted', 'Live Class Deleted', 'Fires when a live class is deleted.', 'braincert', 'virtual classroom', 'deleted',
$json${
  "id": "02FJ48M9467893RFVEBKD3YWWL",
  "resource": "virtual classroom",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T10:30:00.000Z",
  "timestamp": 1707906600,
  "payload": {
    "class_id": 202223,
    "name": "Interactive Webhooks Workshop",
    "slug": "interactive-webhooks-workshop",
    "description": "Join us for a live, interactive workshop on webhooks, where you'll learn the basics and advanced techniques through real-world applications.",
    "datacenter": "New York",
    "class_type": "One-time",
    "attendee_limit": 100,
    "scheduled_date": "2024-03-01",
    "scheduled_time": "15:00:00",
    "instructors": [
      {
        "id": 891011,
        "first_name": "Jordan",
        "last_name": "Casey"
      },
      {
        "id": 891012,
        "first_name": "Alex",
        "last_name": "Taylor"
      }
    ]
  }
}$json$),
('product.deleted', 'Product Deleted', 'Fires when a product is deleted.', 'braincert', 'product', 'deleted',
$json${
  "id": "20240301191956020665300",
  "resource": "product",
  "action": "deleted",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-01T15:19:01.924Z",
  "timestamp": 1709306341,
  "payload": {
    "product_type": "Physical product",
    "name": "Course Growing Star",
    "excerpt": "A plush star for every course graduate.",
    "slug": "https://entelyst.braincert.com/product/course-growing-star",
    "price": "49.99",
    "discount": "5.00",
    "description": "Soft plush star (20 cm) embroidered with your academy logo; ships in 3 business days.",
    "shipping_option": "Both",
    "shipping_charge": "4.50",
    "weight": "1.2 lb",
    "banner": "https://entelyst.braincert.com/media/products/course-growing-star.png",
    "sku": "CGS-0001",
    "track_stock": true,
    "items_in_stock": 0,
    "id": 42
  }
}$json$),
('course.enrollment', 'Course Enrollment', 'Fires when a user enrolls in a course.', 'braincert', 'course_enrollment', 'enrollment',
$json${
  "id": "20240126171756020665195",
  "resource": "course_enrollment",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-01-26T22:17:01.924Z",
  "timestamp": 1706307421,
  "payload": {
    "activated_at": "2024-01-26T22:16:52.255Z",
    "course": {
      "id": 101,
      "name": "Advanced Web Development"
    },
    "enrollment_id": 97472,
    "started_at": "2024-01-26T22:17:01.891Z",
    "user": {
      "email": "jane.doe@example.com",
      "first_name": "Jane",
      "id": 123457,
      "last_name": "Doe"
    }
  }
}$json$),
('test.enrollment', 'Test Enrollment', 'Fires when a user enrolls in a test.', 'braincert', 'test_enrollment', 'enrollment',
$json${
  "id": "20240127171756020665196",
  "resource": "test_enrollment",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-01-27T22:17:01.924Z",
  "timestamp": 1706393821,
  "payload": {
    "activated_at": "2024-01-27T22:16:52.255Z",
    "test": {
      "id": 202,
      "name": "Webhooks Certification Exam"
    },
    "enrollment_id": 97473,
    "started_at": "2024-01-27T22:17:01.891Z",
    "user": {
      "email": "john.public@example.com",
      "first_name": "John",
      "id": 123458,
      "last_name": "Public"
    }
  }
}$json$),
('live_class.enrollment', 'Live Class Enrollment', 'Fires when a user enrolls in a live class.', 'braincert', 'virtual classroom', 'enrollment',
$json${
  "id": "20240303192058040865502",
  "resource": "virtual classroom",
  "action": "enrollment",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-03-03T17:20:03.408Z",
  "timestamp": 1709486403,
  "payload": {
    "class_id": 202223,
    "live_class": {
      "name": "Advanced Yoga Techniques",
      "datacenter": "New York",
      "class_type": "One-time",
      "scheduled_date": "2024-04-01",
      "scheduled_time": "08:00:00"
    },
    "enrollment_id": 97676,
    "enrolled_at": "2024-03-03T17:20:03.401Z",
    "user": {
      "email": "morgan.practitioner@example.com",
      "first_name": "Morgan",
      "id": 123461,
      "last_name": "Practitioner"
    },
    "enrollment_status": "Active"
  }
}$json$),
('course.completed', 'Course Completed', 'Fires when a user completes a course.', 'braincert', 'course_completion', 'completed',
$json${
  "id": "20240214103000123456789",
  "resource": "course_completion",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T12:00:00.000Z",
  "timestamp": 1707912000,
  "payload": {
    "course": {
      "id": 12345,
      "title": "Example Course Title",
      "completion_date": "2024-02-14T12:00:00.000Z"
    },
    "user": {
      "first_name": "John",
      "last_name": "Doe",
      "id": 67890,
      "email": "john.doe@example.com"
    },
    "completion_details": {
      "certificate_issued": "yes",
      "certificate_expiry": "yes",
      "certificate_expiration_date": "2025-02-14T12:00:00.000Z"
    }
  }
}$json$),
('test.completed', 'Test Completed', 'Fires when a user completes a test.', 'braincert', 'assessment', 'completed',
$json${
  "id": "20191029145629636106318",
  "resource": "assessment",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2024-02-14T21:02:50.000Z",
  "timestamp": 1707944570,
  "payload": {
    "id": 909850,
    "name": "Advanced Webhooks Test",
    "final_score": 85,
    "passing_score": 75,
    "open_ended": "no",
    "scoring_type": "adaptive",
    "time_limit": "30 minutes",
    "manual_scoring": "completed",
    "total_questions": 20,
    "correct_count": 17,
    "incorrect_count": 3,
    "user": {
      "id": 124567,
      "first_name": "Sam",
      "last_name": "Davis",
      "email": "sam.davis@example.com"
    },
    "attempt_id": 5511,
    "completed_at": "2024-02-14T21:02:48.120Z"
  }
}$json$),
('sale.new', 'New Sale', 'Fires when an order becomes paid.', 'braincert', 'purchase', 'completed',
$json${
  "id": "20180126172320940835610",
  "resource": "purchase",
  "action": "completed",
  "domain_id": "acme-academy",
  "tenant_id": "acme-academy",
  "created_at": "2023-11-30T16:51:00.000Z",
  "timestamp": 1701363060,
  "payload": {
    "order_id": "ORD_ep3FVWZ9lC",
    "order_date": "2023-11-30T16:51:00.000Z",
    "payment_method": "paypal",
    "payment_mode": "card",
    "currency": "USD",
    "total_amount": 180,
    "service_charge": 0,
    "total": 180,
    "payment_status": "paid",
    "items": [
      {
        "type": "course",
        "name": "PHP course",
        "price": 100,
        "quantity": 1,
        "shipping_charge": 0,
        "total_shipping_amount": 0,
        "discount": 0,
        "item_total": 100
      },
      {
        "type": "assessment",
        "name": "Recurring payment test",
        "price": 80,
        "quantity": 1,
        "shipping_charge": 0,
        "total_shipping_amount": 0,
        "discount": 0,
        "item_total": 80
      }
    ],
    "user": {
      "email": "yasin.y@example.com",
      "first_name": "Yasin",
      "customer_since": "2011-05-28T15:41:00.000Z"
    }
  }
}$json$),
('account.created', 'New Account Created', 'Fires when a user is inserted.', 'aom', NULL, NULL,
$json${
  "id": 4,
  "first_name": "John",
  "last_name": "Doe",
  "email": "johnDoe@academyofmine.com",
  "date_registered": "Aug 11, 2020 04:58 PM"
}$json$),
('course.enrolled', 'Enrolled in a course', 'Fires when users are enrolled in courses (one event per INSERT statement, listing its distinct users in userList and courses in enrolled_courses_list).', 'aom', NULL, NULL,
$json${
  "userList": [
    {
      "id": 1,
      "first_name": "Aom",
      "last_name": "Staff",
      "email": "dev@academyofmine.com"
    }
  ],
  "enrolled_courses_list": [
    {
      "id": 2,
      "name": "Professional Development and Training"
    }
  ]
}$json$),
('quiz.submitted', 'Submitted a Quiz', 'Fires when a quiz submission is inserted.', 'aom', NULL, NULL,
$json${
  "id": 3,
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:37 PM",
  "quiz": {
    "id": 3,
    "name": "quiz 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor_name": {
    "id": 1,
    "name": "Aom Staff"
  }
}$json$),
('assignment.submitted', 'Submitted an assignment', 'Fires when an assignment submission is inserted.', 'aom', NULL, NULL,
$json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  }
}$json$),
('assignment.evaluated', 'Evaluated an assignment', 'Fires when a submission is graded/accepted (status becomes evaluated).', 'aom', NULL, NULL,
$json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "status": "evaluated",
  "grade": 92,
  "feedback": "Clear structure and correct results. Well done!",
  "date_evaluated": "Aug 12, 2020 09:15 AM"
}$json$),
('assignment.rejected', 'Rejected an assignment', 'Fires when a submission is rejected (status becomes rejected).', 'aom', NULL, NULL,
$json${
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "date_submitted": "Aug 11, 2020 01:45 PM",
  "assignment": {
    "id": "1",
    "name": "assignment 1"
  },
  "course": {
    "id": 2,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "status": "rejected",
  "grade": null,
  "feedback": "The second part of the assignment is missing; please resubmit.",
  "date_evaluated": "Aug 12, 2020 09:15 AM"
}$json$),
('discussion.submitted', 'Submitted a discussion', 'Fires when a discussion post is inserted.', 'aom', NULL, NULL,
$json${
  "id": 3,
  "first_name": "Demo",
  "last_name": "Student",
  "email": "student@app.com",
  "discussion": {
    "id": 6,
    "name": "Discussion Board"
  },
  "course": {
    "id": 1,
    "name": "Professional Development and Training"
  },
  "course_instructor": {
    "id": 1,
    "name": "Aom Staff"
  },
  "date_submitted": "Aug 11, 2020 05:03 PM"
}$json$),
('order.placed', 'New Order Placed', 'Fires when an order''s payment succeeds (status COMPLETED).', 'aom', NULL, NULL,
$json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "COMPLETED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$),
('order.failed', 'Order Failed', 'Fires when an order''s payment fails (status FAILED).', 'aom', NULL, NULL,
$json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "FAILED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$),
('order.refunded', 'Order Refunded', 'Fires when an order is refunded (status REFUNDED).', 'aom', NULL, NULL,
$json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "REFUNDED",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "test",
      "address_line_2": "test",
      "city": "Durg",
      "country": "US",
      "state": "AL",
      "zipcode": "491001"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$),
('payment.pending', 'Payment Pending', 'Fires when an order awaits payment (status PENDING).', 'aom', NULL, NULL,
$json${
  "id": 19,
  "date_created": "Aug 11, 2020 07:45 PM",
  "status": "PENDING",
  "currency": "United States (US) dollar",
  "order_total": 220,
  "sub_total": 220,
  "transaction_ref": null,
  "payment_gateway": {
    "id": "Unknown",
    "name": "Manual order"
  },
  "customer": {
    "id": 3,
    "first_name": "Demo",
    "last_name": "Student",
    "email": "student@app.com",
    "billing_address": {
      "full_name": "John doe",
      "address_line_1": "123 John St",
      "address_line_2": "Suite 309",
      "city": "New York",
      "country": "US",
      "state": "NY",
      "zipcode": "10017"
    }
  },
  "line_items": [
    {
      "product_id": 1,
      "product_name": "Product",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    },
    {
      "product_id": 2,
      "product_name": "Prod 2",
      "quantity": 1,
      "price_per_qty": "110.00",
      "total": "110.00",
      "product_type": "product"
    }
  ],
  "coupons": [],
  "notes": []
}$json$),
('announcement.created', 'New Announcement', 'Fires when an announcement is published to its receivers.', 'aom', NULL, NULL,
$json${
  "receivers": [
    {
      "first_name": "Demo",
      "last_name": "Student",
      "name": "Demo Student",
      "email": "student@app.com"
    },
    {
      "first_name": "Site",
      "last_name": "Admin",
      "name": "Site Admin",
      "email": "ehj@academyofmine.com"
    }
  ],
  "annoucement_date": "Aug 11, 2020 02:23 PM",
  "announcement_content": "We have just released a new course on Professional Development. You can purchase it in the course catalog",
  "announcement_title": "Test announcement",
  "created_by": "Aom Staff"
}$json$);
